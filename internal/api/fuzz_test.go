package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzRequests throws arbitrary bodies and ids at the API of a real manager
// on a real NATS: no answer is a 500, every answer is JSON with the
// documented shape (which do checks), and nothing it accepts is half-written.
//
//	go test ./internal/api -run '^$' -fuzz FuzzRequests -fuzztime 60s
func FuzzRequests(f *testing.F) {
	e := start(f)
	_, src := e.do("POST", "/v1/sources", `{"name":"docs","connector":"counter","config":{"count":0}}`)
	docs := "/v1/sources/" + src["id"].(string) + "/documents"
	for _, seed := range []struct{ route, id, body string }{
		{"create", "", `{"name":"a","connector":"counter","config":{"count":1}}`},
		{"create", "", `{"name":"a","connector":"counter","config":{"count":"x"},"credentials":{"k":1}}`},
		{"create", "", `{"name":`},
		{"create", "", `[]`},
		{"patch", "x", `{"config":null,"credentials":null}`},
		{"sync", "x", `{"mode":"incremental"}`},
		{"sync", "x", `{"mode":1}`},
		{"cancel", "", ``},
		{"list", "", `page=0&size=99999999999999999999`},
		{"list", "", `status=running&source_id=%00`},
		{"doc-create", "", `{"external_id":"a","title":"A","content":"text","metadata":{"size":-1}}`},
		{"doc-create", "", `{"content":"\u0000","permissions":{"users":[1]}}`},
		{"doc-put", "0123456789abcdef0123456789abcdef", `{"title":null}`},
		{"doc-status", "0123456789abcdef0123456789abcdef", `{"status":"indexed"}`},
		{"doc-list", "", `page=2&size=1&status=pending&search=%FF`},
		{"action", "echo", `{"params":{"message":1,"x":null}}`},
		{"action", "", `{"params":[]}`},
		{"test-connection", "x", ``},
	} {
		f.Add(seed.route, seed.id, seed.body)
	}
	f.Fuzz(func(t *testing.T, route, id, body string) {
		e := *e
		e.t = t
		var method, path string
		switch route {
		case "create":
			method, path = "POST", "/v1/sources"
		case "patch":
			method, path = "PATCH", "/v1/sources/"+id
		case "sync":
			method, path = "POST", "/v1/sources/"+id+"/sync"
		case "cancel":
			method, path = "POST", "/v1/runs/"+id+"/cancel"
		case "list":
			method, path, body = "GET", "/v1/runs?"+body, ""
		case "doc-create":
			method, path = "POST", docs
		case "doc-put":
			method, path = "PUT", docs+"/"+id
		case "doc-status":
			method, path = "POST", docs+"/"+id+"/status"
		case "doc-list":
			method, path, body = "GET", docs+"?"+body, ""
		case "action":
			method, path = "POST", strings.TrimSuffix(docs, "/documents")+"/actions/"+id
		case "test-connection":
			method, path = "POST", "/v1/sources/"+id+"/test-connection"
		default:
			method, path = "GET", "/v1/sources/"+id
		}
		if strings.ContainsAny(path, " #") || strings.Contains(path, "..") || strings.IndexFunc(path, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			return // not a request line an HTTP client sends
		}
		if _, err := http.NewRequest(method, e.url+path, nil); err != nil {
			return
		}
		code, out := e.do(method, path, body)
		if code >= 500 {
			t.Fatalf("%s %s %q: %d %v", method, path, body, code, out)
		}
		if code >= 400 && out["code"] == nil && out["detail"] == nil {
			t.Fatalf("%s %s %q: %d without an error shape: %v", method, path, body, code, out)
		}
		if code == http.StatusCreated && route == "create" {
			if sid, _ := out["id"].(string); sid != "" {
				if c, got := e.do("GET", "/v1/sources/"+sid, ""); c != http.StatusOK || got["name"] != out["name"] {
					t.Fatalf("created source %s reads back as %d %v", sid, c, got)
				}
			}
		}
	})
}
