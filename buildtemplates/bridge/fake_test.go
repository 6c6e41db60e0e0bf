package main

// The test binary doubles as a fake bootstrap: a Runtime API client written
// with net/http. Its start-up behaviour comes from FNCTL_FAKE_MODE; what it
// does per invocation comes from the event ("cmd:..." commands, else echo).

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func runFakeBootstrap() int {
	api := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/"
	client := &http.Client{}
	post := func(path string, body []byte, hdr map[string]string) (int, string) {
		req, _ := http.NewRequest("POST", api+path, bytes.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			fmt.Fprintf(os.Stderr, "fake: post %s: %v\n", path, err)
			return 0, ""
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}

	switch mode := os.Getenv("FNCTL_FAKE_MODE"); {
	case mode == "initerror":
		post("init/error", []byte(`{"errorMessage":"boom at init","errorType":"Runtime.FakeInitError"}`), nil)
		return 1
	case mode == "exitbeforenext":
		return 3
	case mode == "failonrestart":
		// The first process works; any restarted one fails to start.
		marker := os.Getenv("LAMBDA_TASK_ROOT") + "/started"
		if _, err := os.Stat(marker); err == nil {
			return 5
		}
		os.WriteFile(marker, nil, 0o644)
	case strings.HasPrefix(mode, "slowinit:"):
		ms, _ := strconv.Atoi(strings.TrimPrefix(mode, "slowinit:"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}

	var seen []string
	for {
		fmt.Println("fake-polling")
		resp, err := client.Get(api + "invocation/next")
		if err != nil {
			fmt.Fprintf(os.Stderr, "fake: next: %v\n", err)
			return 10
		}
		event, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")

		// In API Gateway mode the command is the event's body.
		cmd := string(event)
		var gw struct {
			HTTPMethod string  `json:"httpMethod"`
			Body       *string `json:"body"`
		}
		isGW := json.Unmarshal(event, &gw) == nil && gw.HTTPMethod != ""
		if isGW {
			cmd = ""
			if gw.Body != nil {
				cmd = *gw.Body
			}
		}
		seen = append(seen, cmd)
		fmt.Println("fake-got " + cmd)

		respond := func(b []byte) {
			if code, body := post("invocation/"+id+"/response", b, nil); code != http.StatusAccepted {
				fmt.Fprintf(os.Stderr, "fake: response got %d %s\n", code, body)
			}
		}
		verb, arg, _ := strings.Cut(cmd, ":")
		if verb != "cmd" {
			if isGW {
				b, _ := json.Marshal(map[string]interface{}{"statusCode": 200, "body": string(event)})
				respond(b)
			} else {
				respond(event)
			}
			continue
		}
		verb, arg, _ = strings.Cut(arg, ":")
		switch verb {
		case "upper":
			respond([]byte(strings.ToUpper(arg)))
		case "sleep":
			ms, _ := strconv.Atoi(arg)
			time.Sleep(time.Duration(ms) * time.Millisecond)
			respond([]byte("slept " + arg))
		case "error":
			post("invocation/"+id+"/error", []byte(`{"errorMessage":"boom","errorType":"FakeError","stackTrace":["a.go:1"]}`), nil)
		case "errortext":
			post("invocation/"+id+"/error", []byte("bad thing"), map[string]string{"Lambda-Runtime-Function-Error-Type": "Custom.Type"})
		case "die":
			code, _ := strconv.Atoi(arg)
			return code
		case "exitafter":
			respond([]byte("bye"))
			return 0
		case "noresponse":
			// ask for the next invocation without answering this one
		case "big":
			n, _ := strconv.Atoi(arg)
			code, body := post("invocation/"+id+"/response", bytes.Repeat([]byte("a"), n), nil)
			fmt.Fprintf(os.Stderr, "fake: big response got %d %s\n", code, body)
		case "badid":
			code, body := post("invocation/00000000-0000-4000-8000-000000000000/response", []byte("x"), nil)
			respond([]byte(fmt.Sprintf("%d %s", code, body)))
		case "trailererror":
			// aws-lambda-go reports a failed streamed response in trailers.
			errBody := base64.StdEncoding.EncodeToString([]byte(`{"errorMessage":"stream broke","errorType":"StreamError"}`))
			req, _ := http.NewRequest("POST", api+"invocation/"+id+"/response", nil)
			req.ContentLength = -1
			req.Trailer = http.Header{"Lambda-Runtime-Function-Error-Type": nil, "Lambda-Runtime-Function-Error-Body": nil}
			req.Body = &trailerBody{r: strings.NewReader("partial"), req: req, typ: "StreamError", body: errBody}
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		case "pipe":
			// A streamed response, one byte per write: a chunk per byte.
			n, _ := strconv.Atoi(arg)
			pr, pw := io.Pipe()
			go func() {
				var b [1]byte
				for i := 0; i < n; i++ {
					b[0] = pipeByte(i)
					if _, err := pw.Write(b[:]); err != nil {
						return
					}
				}
				pw.Close()
			}()
			req, _ := http.NewRequest("POST", api+"invocation/"+id+"/response", pr)
			resp, err := client.Do(req)
			if err != nil {
				fmt.Fprintf(os.Stderr, "fake: streamed response: %v\n", err)
				pr.CloseWithError(err)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				fmt.Fprintf(os.Stderr, "fake: streamed response got %d\n", resp.StatusCode)
			}
		case "respond":
			respond([]byte(arg))
		case "respondraw":
			b, _ := base64.StdEncoding.DecodeString(arg)
			respond(b)
		case "seen":
			b, _ := json.Marshal(seen)
			respond(b)
		case "info":
			info := map[string]interface{}{"pid": os.Getpid()}
			hdr := map[string]string{}
			for k := range resp.Header {
				hdr[k] = resp.Header.Get(k)
			}
			info["headers"] = hdr
			env := map[string]string{}
			for _, k := range []string{"_HANDLER", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
				"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
				"AWS_LAMBDA_FUNCTION_TIMEOUT", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
				"AWS_EXECUTION_ENV", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_RUNTIME_API", "CUSTOM_VAR"} {
				env[k] = os.Getenv(k)
			}
			info["env"] = env
			wd, _ := os.Getwd()
			info["cwd"] = wd
			info["now"] = time.Now().UnixMilli()
			b, _ := json.Marshal(info)
			respond(b)
		default:
			respond([]byte("unknown command " + verb))
		}
	}
}

// pipeByte is byte i of a "cmd:pipe:N" response.
func pipeByte(i int) byte { return 'a' + byte(i%26) }

// trailerBody sets the request's trailers once the body has been read.
type trailerBody struct {
	r         io.Reader
	req       *http.Request
	typ, body string
}

func (t *trailerBody) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err == io.EOF {
		t.req.Trailer.Set("Lambda-Runtime-Function-Error-Type", t.typ)
		t.req.Trailer.Set("Lambda-Runtime-Function-Error-Body", t.body)
	}
	return n, err
}

func (t *trailerBody) Close() error { return nil }
