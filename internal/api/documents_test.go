package api_test

import (
	"io"
	"net/http"
	"testing"
)

func TestDocumentsAPI(t *testing.T) {
	e := start(t)
	_, src := e.do("POST", "/v1/sources", `{"name":"c","connector":"counter","config":{"count":5}}`)
	id := src["id"].(string)
	_, run := e.do("POST", "/v1/sources/"+id+"/sync", "")
	e.waitRun(run["id"].(string), "completed")
	base := "/v1/sources/" + id + "/documents"

	code, page := e.do("GET", base+"?size=2&page=2", "")
	if code != 200 || page["total"].(float64) != 5 || len(page["items"].([]any)) != 2 || page["page"].(float64) != 2 {
		t.Fatalf("list: %d %v", code, page)
	}
	first := page["items"].([]any)[0].(map[string]any)
	if first["external_id"] != "doc-2" || first["status"] != "pending" || first["origin"] != "sync" {
		t.Fatalf("item %v", first)
	}
	docID := first["id"].(string)
	if code, doc := e.do("GET", base+"/"+docID, ""); code != 200 || doc["external_id"] != "doc-2" {
		t.Fatalf("get: %d %v", code, doc)
	}
	// The counter connector stores no content.
	if code, body := e.do("GET", base+"/"+docID+"/content", ""); code != 404 || body["code"] != "not_found" {
		t.Fatalf("content of a metadata-only document: %d %v", code, body)
	}

	code, doc := e.do("POST", base, `{"external_id":"notes/1","title":"Notes","content":"# Notes\nhello","content_type":"text/markdown"}`)
	if code != 201 || doc["origin"] != "manual" || doc["content_id"] == nil {
		t.Fatalf("create: %d %v", code, doc)
	}
	manual := doc["id"].(string)
	resp, err := http.Get(e.url + base + "/" + manual + "/content")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "# Notes\nhello" || resp.Header.Get("Content-Type") != "text/markdown" {
		t.Fatalf("content: %d %q %s", resp.StatusCode, b, resp.Header.Get("Content-Type"))
	}
	if code, doc = e.do("PUT", base+"/"+manual, `{"title":"Notes, edited"}`); code != 200 || doc["title"] != "Notes, edited" || doc["content_id"] == nil {
		t.Fatalf("put: %d %v", code, doc)
	}
	if code, doc = e.do("POST", base+"/"+manual+"/status", `{"status":"failed","error":"boom"}`); code != 200 || doc["status"] != "failed" || doc["error"] != "boom" {
		t.Fatalf("status: %d %v", code, doc)
	}
	if code, page = e.do("GET", base+"?status=failed&search=NOTES", ""); code != 200 || page["total"].(float64) != 1 {
		t.Fatalf("filtered list: %d %v", code, page)
	}

	// Bad input: the documented shapes, nothing changed.
	for _, c := range []struct {
		method, path, body string
		code               int
		field              string
	}{
		{"GET", base + "?status=done", "", 422, "detail"},
		{"GET", base + "?size=0", "", 422, "detail"},
		{"GET", "/v1/sources/nope/documents", "", 404, "code"},
		{"GET", base + "/nope", "", 404, "code"},
		{"GET", base + "/" + manual + "/content?raw=maybe", "", 422, "detail"},
		{"POST", base, `{"title":`, 400, "code"},
		{"POST", base, `{"title":"x","colour":"red"}`, 422, "detail"},
		{"POST", base, `{"external_id":"notes/1"}`, 409, "code"},
		{"POST", base, `{"title":7}`, 422, "detail"},
		{"PUT", base + "/" + manual, `{"external_id":"other"}`, 422, "detail"},
		{"PUT", base + "/0123456789abcdef0123456789abcdef", `{"title":"x"}`, 404, "code"},
		{"POST", base + "/" + manual + "/status", `{"status":"indexed","error":"x"}`, 422, "detail"},
		{"POST", base + "/" + manual + "/status", `{"status":"great"}`, 422, "detail"},
		{"POST", base + "/" + manual + "/status", `{"status":"indexed","fingerprint":"0000"}`, 409, "code"},
		{"DELETE", base + "/0123456789abcdef0123456789abcdef", "", 404, "code"},
	} {
		code, body := e.do(c.method, c.path, c.body)
		if code != c.code || body[c.field] == nil {
			t.Errorf("%s %s %s: %d %v, want %d with %s", c.method, c.path, c.body, code, body, c.code, c.field)
		}
	}
	if _, doc = e.do("GET", base+"/"+manual, ""); doc["title"] != "Notes, edited" || doc["status"] != "failed" {
		t.Fatalf("bad input changed the document: %v", doc)
	}

	if code, _ := e.do("DELETE", base+"/"+manual, ""); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code, page = e.do("GET", base, ""); page["total"].(float64) != 5 {
		t.Fatalf("after delete: %d %v", code, page)
	}
}
