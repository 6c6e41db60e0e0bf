package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// config is everything the bridge reads from its environment and argv.
type config struct {
	host       string
	port       int
	invokers   int
	bootstrap  []string // argv of the bootstrap; bootstrap[0] is resolved
	path       string   // resolved executable path of bootstrap[0]
	taskRoot   string
	dir        string // working directory for bootstraps ("" = inherit)
	timeout    time.Duration
	timeoutStr string // "N.NN", as printed in timeout errors
	maxBytes   int64
	apiGateway bool

	maxConns       int           // open public connections
	maxQueue       int64         // public requests waiting for an invoker
	bodyTimeout    time.Duration // to receive a request body
	bodyTimeoutStr string

	functionName string
	arn          string
	baseEnv      []string // environment for bootstraps, minus per-invoker vars
}

const (
	defaultPort     = 8080
	defaultInvokers = 4
	defaultTimeout  = 300.0
	defaultMaxBytes = 6291456
	maxInvokers     = 1024

	// Enough for the Knative autoscaling demo's `hey -c 1000` on one
	// container, all queued behind a few invokers; a slow connection costs
	// about 40 KiB.
	defaultMaxConns    = 2048
	defaultMaxQueue    = 1024
	defaultBodyTimeout = 60.0 // a 6 MB body at 100 kB/s
	maxLimit           = 1 << 20
)

// envMap is a lookup over a KEY=VALUE list; later entries win, as in exec.
type envMap map[string]string

func newEnvMap(environ []string) envMap {
	m := make(envMap, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// get returns a non-empty value or "".
func (m envMap) get(k string) string { return m[k] }

func (m envMap) first(keys ...string) string {
	for _, k := range keys {
		if v := m[k]; v != "" {
			return v
		}
	}
	return ""
}

// loadConfig parses argv (already stripped of flags) and the environment.
// Errors are misconfigurations: the caller prints them and exits 2.
func loadConfig(args []string, environ []string) (*config, error) {
	env := newEnvMap(environ)
	c := &config{}

	c.host = env.get("FNCTL_LISTEN_HOST")
	c.port = defaultPort
	if v := strings.TrimSpace(env.get("PORT")); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 || p > 65535 {
			return nil, fmt.Errorf("invalid PORT %q: want an integer 0-65535", v)
		}
		c.port = p
	}

	var err error
	if c.invokers, err = intSetting(env, "INVOKER_COUNT", defaultInvokers, maxInvokers); err != nil {
		return nil, err
	}
	if c.maxConns, err = intSetting(env, "FNCTL_BRIDGE_MAX_CONNECTIONS", defaultMaxConns, maxLimit); err != nil {
		return nil, err
	}
	maxQueue, err := intSetting(env, "FNCTL_BRIDGE_MAX_QUEUE", defaultMaxQueue, maxLimit)
	if err != nil {
		return nil, err
	}
	c.maxQueue = int64(maxQueue)

	secs, err := secondsSetting(env.first("FUNCTION_TIMEOUT", "AWS_LAMBDA_FUNCTION_TIMEOUT"), "FUNCTION_TIMEOUT", defaultTimeout)
	if err != nil {
		return nil, err
	}
	c.timeout = time.Duration(secs * float64(time.Second))
	c.timeoutStr = strconv.FormatFloat(secs, 'f', 2, 64)
	bodySecs, err := secondsSetting(env.get("FNCTL_BRIDGE_BODY_TIMEOUT"), "FNCTL_BRIDGE_BODY_TIMEOUT", defaultBodyTimeout)
	if err != nil {
		return nil, err
	}
	c.bodyTimeout = time.Duration(bodySecs * float64(time.Second))
	c.bodyTimeoutStr = strconv.FormatFloat(bodySecs, 'f', -1, 64)

	c.maxBytes = defaultMaxBytes
	if v := strings.TrimSpace(env.get("MAX_REQUEST_BYTES")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > 1<<30 {
			return nil, fmt.Errorf("invalid MAX_REQUEST_BYTES %q: want an integer 1-%d", v, 1<<30)
		}
		c.maxBytes = n
	}

	switch ev := strings.ToUpper(strings.TrimSpace(env.get("EVENT"))); ev {
	case "":
	case "API_GATEWAY":
		c.apiGateway = true
	default:
		return nil, fmt.Errorf("invalid EVENT %q: want empty (passthrough) or API_GATEWAY", env.get("EVENT"))
	}

	c.taskRoot = env.first("LAMBDA_TASK_ROOT")
	if c.taskRoot == "" {
		c.taskRoot = "/var/task"
	}
	if st, err := os.Stat(c.taskRoot); err == nil && st.IsDir() {
		c.dir = c.taskRoot
	}

	if err := c.resolveBootstrap(args, env); err != nil {
		return nil, err
	}

	c.functionName = env.first("AWS_LAMBDA_FUNCTION_NAME", "K_SERVICE")
	if c.functionName == "" {
		c.functionName = "function"
	}
	region := env.first("AWS_REGION", "AWS_DEFAULT_REGION")
	if region == "" {
		region = "us-east-1"
	}
	c.arn = "arn:aws:lambda:" + region + ":000000000000:function:" + c.functionName
	c.baseEnv = c.bootstrapEnv(environ, env, region, secs)
	return c, nil
}

// intSetting reads an integer 1-max from the environment variable name.
func intSetting(env envMap, name string, def, max int) (int, error) {
	v := strings.TrimSpace(env.get(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, fmt.Errorf("invalid %s %q: want an integer 1-%d", name, v, max)
	}
	return n, nil
}

// secondsSetting reads a positive number of seconds (fractions allowed).
func secondsSetting(v, name string, def float64) (float64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 || f > 1e6 {
		return 0, fmt.Errorf("invalid %s %q: want a positive number of seconds", name, v)
	}
	return f, nil
}

// resolveBootstrap picks the bootstrap command: argv, then $BOOTSTRAP, then
// $LAMBDA_TASK_ROOT/bootstrap (if executable), then /var/runtime/bootstrap.
func (c *config) resolveBootstrap(args []string, env envMap) error {
	var cmd []string
	switch {
	case len(args) > 0:
		cmd = args
	case strings.TrimSpace(env.get("BOOTSTRAP")) != "":
		b := strings.TrimSpace(env.get("BOOTSTRAP"))
		if _, err := os.Stat(b); err != nil && strings.ContainsAny(b, " \t") {
			cmd = strings.Fields(b) // e.g. BOOTSTRAP="node /var/task/index.js"
		} else {
			cmd = []string{b}
		}
	default:
		p := strings.TrimRight(c.taskRoot, "/") + "/bootstrap"
		if isExecutable(p) {
			cmd = []string{p}
		} else {
			cmd = []string{"/var/runtime/bootstrap"}
		}
	}
	path, err := exec.LookPath(cmd[0])
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no bootstrap found: %s does not exist (set BOOTSTRAP, pass it as an argument, or provide $LAMBDA_TASK_ROOT/bootstrap)", cmd[0])
		}
		return fmt.Errorf("bootstrap %s is not usable: %v", cmd[0], err)
	}
	if st, err := os.Stat(path); err != nil || st.IsDir() {
		return fmt.Errorf("bootstrap %s is not an executable file", cmd[0])
	}
	c.bootstrap = cmd
	c.path = path
	return nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

// bootstrapEnv is the environment shared by all bootstraps: the bridge's own
// plus the Lambda variables that are not already set.
func (c *config) bootstrapEnv(environ []string, env envMap, region string, secs float64) []string {
	out := make([]string, 0, len(environ)+16)
	for _, kv := range environ {
		if strings.HasPrefix(kv, "AWS_LAMBDA_RUNTIME_API=") {
			continue // always set per invoker
		}
		out = append(out, kv)
	}
	set := func(k, v string) {
		if env[k] == "" {
			out = append(out, k+"="+v)
		}
	}
	if h := env.get("HANDLER"); h != "" {
		set("_HANDLER", h)
	}
	set("LAMBDA_TASK_ROOT", c.taskRoot)
	set("LAMBDA_RUNTIME_DIR", "/var/runtime")
	set("AWS_LAMBDA_FUNCTION_NAME", c.functionName)
	version := env.first("AWS_LAMBDA_FUNCTION_VERSION", "K_REVISION")
	if version == "" {
		version = "$LATEST"
	}
	set("AWS_LAMBDA_FUNCTION_VERSION", version)
	set("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
	set("AWS_LAMBDA_FUNCTION_TIMEOUT", strconv.Itoa(int(math.Ceil(secs))))
	set("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/"+c.functionName)
	set("AWS_LAMBDA_LOG_STREAM_NAME", time.Now().UTC().Format("2006/01/02")+"/["+version+"]"+randomHex(16))
	set("AWS_EXECUTION_ENV", "fnctl")
	set("AWS_REGION", region)
	set("AWS_DEFAULT_REGION", region)
	// Each bootstrap serves one invocation at a time: a Go runtime with more
	// Ps than that needs spins and wakes threads for nothing (about a fifth
	// of a Go bootstrap's CPU per event). Share the CPUs out instead.
	set("GOMAXPROCS", strconv.Itoa(bootstrapProcs(availableCPUs(), c.invokers)))
	return out
}

// bootstrapProcs is the default GOMAXPROCS of each bootstrap: the CPUs
// divided among the invokers, rounded up.
func bootstrapProcs(cpus, invokers int) int {
	if invokers < 1 {
		invokers = 1
	}
	n := (cpus + invokers - 1) / invokers
	if n < 1 {
		n = 1
	}
	return n
}
