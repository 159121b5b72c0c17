package api_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/internal/api"
)

type sseEvent struct{ id, event, data string }

// readSSE reads events until the stream ends, ctx is done, or stop says
// so (it is also asked after each keep-alive comment, with the count of
// those so far); open is closed once the response headers are in.
func readSSE(ctx context.Context, t *testing.T, url, lastID string, open chan<- struct{}, stop func(evs []sseEvent, keepAlives int) bool) []sseEvent {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return nil
	}
	defer resp.Body.Close()
	if open != nil {
		close(open)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("%s: %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
		return nil
	}
	var out []sseEvent
	var cur sseEvent
	keepAlives := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.id != "" {
				out = append(out, cur)
				if stop != nil && stop(out, keepAlives) {
					return out
				}
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, ": keep-alive"):
			keepAlives++
			if stop != nil && stop(out, keepAlives) {
				return out
			}
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data = line[6:]
		}
	}
	return out
}

func TestServerSentEvents(t *testing.T) {
	e := start(t)
	_, src := e.do("POST", "/v1/sources", `{"name":"c","connector":"counter","config":{"count":5}}`)
	id := src["id"].(string)
	_, run := e.do("POST", "/v1/sources/"+id+"/sync", "")
	runID := run["id"].(string)
	e.waitRun(runID, "completed")

	// The run's events, from the first to the final one; then the stream ends.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	all := readSSE(ctx, t, e.url+"/v1/runs/"+runID+"/events", "", nil, nil)
	if len(all) < 8 || all[0].event != "run.started" || all[len(all)-1].event != "run.completed" {
		t.Fatalf("run events: %d, first %+v, last %+v", len(all), all[0], all[len(all)-1])
	}
	upserts := 0
	for _, ev := range all {
		if ev.event == "document.upserted" {
			upserts++
		}
		if !strings.Contains(ev.data, `"run_id":"`+runID+`"`) {
			t.Fatalf("event of another run: %+v", ev)
		}
	}
	if upserts != 5 {
		t.Fatalf("%d document.upserted", upserts)
	}
	// Reconnecting after the third: the rest, nothing twice.
	rest := readSSE(ctx, t, e.url+"/v1/runs/"+runID+"/events", all[2].id, nil, nil)
	if len(rest) != len(all)-3 || rest[0].id != all[3].id {
		t.Fatalf("after %s: %d events from %s, want %d from %s", all[2].id, len(rest), rest[0].id, len(all)-3, all[3].id)
	}

	// Bad input and unknown runs.
	for path, want := range map[string]int{
		"/v1/runs/nope/events":                          404,
		"/v1/runs/" + runID + "/events?last_event_id=x": 422,
		"/v1/events?type=nothing":                       422,
		"/v1/events?source_id=a.b":                      422,
	} {
		if code, body := e.do("GET", path, ""); code != want {
			t.Errorf("%s: %d %v, want %d", path, code, body, want)
		}
	}
}

// The firehose starts now, filters by source and type, and keeps idle
// connections alive.
func TestEventsFirehose(t *testing.T) {
	e := start(t)
	srv := httptest.NewServer(api.New(e.m, zap.NewNop(), api.WithKeepAlive(100*time.Millisecond)))
	t.Cleanup(srv.Close)
	_, src := e.do("POST", "/v1/sources", `{"name":"c","connector":"counter","config":{"count":3}}`)
	id := src["id"].(string)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	open := make(chan struct{})
	got := make(chan []sseEvent, 1)
	go func() {
		got <- readSSE(ctx, t, srv.URL+"/v1/events?source_id="+id+"&type=document.upserted", "", open, func(evs []sseEvent, keepAlives int) bool {
			return len(evs) == 3 && keepAlives > 0
		})
	}()
	<-open // the stream's consumer exists: it shows what comes from now on
	_, run := e.do("POST", "/v1/sources/"+id+"/sync", "")
	e.waitRun(run["id"].(string), "completed")
	evs := <-got
	if len(evs) != 3 {
		t.Fatalf("firehose: %d events, want 3 document.upserted", len(evs))
	}
	for _, ev := range evs {
		if ev.event != "document.upserted" {
			t.Fatalf("unfiltered: %+v", ev)
		}
	}
}
