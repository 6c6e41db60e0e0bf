package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// API Gateway REST (v1) proxy integration event.
type apigwEvent struct {
	Resource                        string              `json:"resource"`
	Path                            string              `json:"path"`
	HTTPMethod                      string              `json:"httpMethod"`
	Headers                         map[string]string   `json:"headers"`
	MultiValueHeaders               map[string][]string `json:"multiValueHeaders"`
	QueryStringParameters           map[string]string   `json:"queryStringParameters"`
	MultiValueQueryStringParameters map[string][]string `json:"multiValueQueryStringParameters"`
	PathParameters                  map[string]string   `json:"pathParameters"`
	StageVariables                  map[string]string   `json:"stageVariables"`
	RequestContext                  apigwContext        `json:"requestContext"`
	Body                            *string             `json:"body"`
	IsBase64Encoded                 bool                `json:"isBase64Encoded"`
}

type apigwContext struct {
	AccountID        string        `json:"accountId"`
	ResourcePath     string        `json:"resourcePath"`
	HTTPMethod       string        `json:"httpMethod"`
	Path             string        `json:"path"`
	Stage            string        `json:"stage"`
	RequestID        string        `json:"requestId"`
	RequestTime      string        `json:"requestTime"`
	RequestTimeEpoch int64         `json:"requestTimeEpoch"`
	Protocol         string        `json:"protocol"`
	DomainName       string        `json:"domainName"`
	Identity         apigwIdentity `json:"identity"`
}

type apigwIdentity struct {
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
}

func buildAPIGatewayEvent(r *http.Request, body []byte) []byte {
	now := time.Now()
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	ev := apigwEvent{
		Resource:          "/{proxy+}",
		Path:              path,
		HTTPMethod:        r.Method,
		Headers:           make(map[string]string, len(r.Header)+1),
		MultiValueHeaders: make(map[string][]string, len(r.Header)+1),
		RequestContext: apigwContext{
			AccountID:        "000000000000",
			ResourcePath:     "/{proxy+}",
			HTTPMethod:       r.Method,
			Path:             path,
			Stage:            "$default",
			RequestID:        newUUID(),
			RequestTime:      now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			RequestTimeEpoch: now.UnixMilli(),
			Protocol:         r.Proto,
			DomainName:       r.Host,
			Identity:         apigwIdentity{SourceIP: sourceIP(r), UserAgent: r.UserAgent()},
		},
	}
	if r.Host != "" {
		ev.Headers["Host"] = r.Host
		ev.MultiValueHeaders["Host"] = []string{r.Host}
	}
	for k, vs := range r.Header {
		if len(vs) == 0 {
			continue
		}
		ev.Headers[k] = vs[len(vs)-1]
		ev.MultiValueHeaders[k] = vs
	}
	if q := r.URL.Query(); len(q) > 0 {
		ev.QueryStringParameters = make(map[string]string, len(q))
		ev.MultiValueQueryStringParameters = q
		for k, vs := range q {
			ev.QueryStringParameters[k] = vs[len(vs)-1]
		}
	}
	if path != "/" {
		ev.PathParameters = map[string]string{"proxy": strings.TrimPrefix(path, "/")}
	}
	if len(body) > 0 {
		var s string
		if utf8.Valid(body) {
			s = string(body)
		} else {
			s = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
		ev.Body = &s
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&ev); err != nil {
		// Cannot happen for these types; fall back to a minimal event.
		return []byte(`{"resource":"/{proxy+}","path":` + jsonString(path) + `,"httpMethod":` + jsonString(r.Method) + `}`)
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n"))
}

// sourceIP is the first X-Forwarded-For hop (set by Knative's proxies), or
// the peer address.
func sourceIP(r *http.Request) string {
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		first, _, _ := strings.Cut(xff, ",")
		if ip := strings.TrimSpace(first); ip != "" {
			return ip
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type proxyResponse struct {
	status int
	header http.Header
	body   []byte
}

var internalServerError = []byte(`{"message":"Internal server error"}`)

func (b *bridge) writeAPIGatewayResponse(w http.ResponseWriter, payload []byte) {
	pr, reason := parseProxyResponse(payload)
	if pr == nil {
		b.logf("malformed Lambda proxy response: %s; answering 502 as API Gateway does", reason)
		writeJSON(w, http.StatusBadGateway, internalServerError)
		return
	}
	h := w.Header()
	for k, vs := range pr.header {
		h[k] = vs
	}
	if len(h[hdrContentType]) == 0 {
		h[hdrContentType] = ctJSON
	}
	h[hdrContentLength] = []string{strconv.Itoa(len(pr.body))}
	w.WriteHeader(pr.status)
	w.Write(pr.body)
}

// Hop-by-hop and framing headers a function may not set.
var droppedHeaders = map[string]bool{
	"Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Upgrade": true, "Trailer": true,
}

// parseProxyResponse validates a Lambda proxy integration response. On
// failure it returns nil and the reason.
func parseProxyResponse(payload []byte) (*proxyResponse, string) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil || raw == nil {
		return nil, "not a JSON object"
	}
	pr := &proxyResponse{header: http.Header{}}

	sc := bytes.TrimSpace(raw["statusCode"])
	if len(sc) == 0 || !(sc[0] == '-' || (sc[0] >= '0' && sc[0] <= '9')) {
		return nil, "statusCode missing or not a number"
	}
	f, err := strconv.ParseFloat(string(sc), 64)
	if err != nil || f != float64(int(f)) || f < 100 || f > 599 {
		return nil, "statusCode " + string(sc) + " is not a valid HTTP status"
	}
	pr.status = int(f)

	if v, ok := raw["headers"]; ok && !isNull(v) {
		var hs map[string]json.RawMessage
		if json.Unmarshal(v, &hs) != nil {
			return nil, "headers is not an object"
		}
		for k, hv := range hs {
			s, ok := scalarText(hv)
			if !ok {
				return nil, "header " + k + " is not a string"
			}
			if !isNull(hv) && !droppedHeaders[http.CanonicalHeaderKey(k)] {
				pr.header.Set(k, s)
			}
		}
	}
	if v, ok := raw["multiValueHeaders"]; ok && !isNull(v) {
		var hs map[string][]json.RawMessage
		if json.Unmarshal(v, &hs) != nil {
			return nil, "multiValueHeaders is not an object of arrays"
		}
		for k, vals := range hs {
			ck := http.CanonicalHeaderKey(k)
			if droppedHeaders[ck] {
				continue
			}
			out := make([]string, 0, len(vals))
			for _, hv := range vals {
				s, ok := scalarText(hv)
				if !ok {
					return nil, "multiValueHeaders " + k + " has a non-string value"
				}
				if !isNull(hv) {
					out = append(out, s)
				}
			}
			if len(out) > 0 {
				pr.header[ck] = out // multiValueHeaders win over headers
			}
		}
	}

	b64 := false
	if v, ok := raw["isBase64Encoded"]; ok && !isNull(v) {
		if json.Unmarshal(v, &b64) != nil {
			return nil, "isBase64Encoded is not a boolean"
		}
	}
	if v, ok := raw["body"]; ok && !isNull(v) {
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil, "body is not a string"
		}
		if b64 {
			d, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, "body is not valid base64 although isBase64Encoded is true"
			}
			pr.body = d
		} else {
			pr.body = []byte(s)
		}
	}
	return pr, ""
}

func isNull(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) == 0 || string(v) == "null"
}

// scalarText renders a header value: strings unquoted, numbers and booleans
// as written, null as "". Objects and arrays are rejected.
func scalarText(v json.RawMessage) (string, bool) {
	v = bytes.TrimSpace(v)
	if isNull(v) {
		return "", true
	}
	switch v[0] {
	case '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return "", false
		}
		return s, true
	case '{', '[':
		return "", false
	default:
		return string(v), true
	}
}
