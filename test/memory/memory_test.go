// Package memory measures what holding a large catalog costs: the resident
// memory of the manager (and of the NATS server beside it) while a source
// of N documents syncs and after, and the documents page latency at that
// size. It runs only when asked:
//
//	go test ./test/memory -run Catalog -v -timeout 90m -memory.docs 1000000
//
// Two layouts, as operators run them: the manager against a separate
// nats-server process (production), and the all-in-one manager with its
// embedded server (development). Binaries are built without -race.
package memory

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/test/harness"
)

var (
	docs   = flag.Int("memory.docs", 0, "documents to sync; 0 skips the measurement")
	layout = flag.String("memory.layout", "external,embedded", "layouts to measure: external (a nats-server process), embedded")
)

// rss returns a process's resident and peak resident memory in MiB.
func rss(pid int) (cur, peak float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			cur = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		}
	}
	return cur, peak
}

func TestCatalogMemory(t *testing.T) {
	if *docs == 0 {
		t.Skip("set -memory.docs N to measure (see the package comment)")
	}
	bins, err := harness.Build(t.TempDir(), false, "./cmd/manager", "github.com/nats-io/nats-server/v2")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(*layout, ",") {
		t.Run(l, func(t *testing.T) { measure(t, bins, l) })
	}
}

func measure(t *testing.T, bins map[string]string, layout string) {
	args := []string{"--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:-1", "--log-format", "json", "--log-level", "info"}
	var server *harness.Proc
	if layout == "external" {
		dir := t.TempDir()
		conf := fmt.Sprintf("listen: 127.0.0.1:-1\njetstream { store_dir: %q }\n", dir)
		path := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		server = harness.Start(t, "nats-server", bins["nats-server"], "-c", path)
		server.WaitLine("Server is ready", 30*time.Second)
		url := ""
		for _, line := range strings.Split(server.Log(), "\n") {
			if i := strings.Index(line, "Listening for client connections on "); i >= 0 {
				url = "nats://" + strings.TrimSpace(line[i+len("Listening for client connections on "):])
			}
		}
		args = append(args, "--nats-url", url)
	}
	m := harness.Start(t, "manager", bins["manager"], args...)
	ready := m.WaitLog("Tributary manager ready", time.Minute)
	api := harness.API{T: t, Base: ready["http"].(string)}

	src := api.CreateSource("big", "synthetic", map[string]any{"count": *docs})
	began := time.Now()
	run := api.Sync(src.ID, nil)
	var peakM, peakS float64
	sample := func() (float64, float64) {
		cm, pm := rss(m.PID())
		peakM = max(peakM, pm)
		var cs float64
		if server != nil {
			var ps float64
			cs, ps = rss(server.PID())
			peakS = max(peakS, ps)
		}
		return cm, cs
	}
	for {
		r := api.Run(run.ID)
		cm, cs := sample()
		t.Logf("%6.0fs %-9s %8d documents  manager %6.0f MiB  nats-server %6.0f MiB", time.Since(began).Seconds(), r.Status, r.New, cm, cs)
		if r.Terminal() {
			if r.Status != "completed" || r.New != *docs {
				t.Fatalf("run: %+v", r)
			}
			break
		}
		time.Sleep(15 * time.Second)
	}
	took := time.Since(began)

	// The documents list: the first loads the source's index.
	path := "/v1/sources/" + src.ID + "/documents"
	t0 := time.Now()
	api.Must(http.StatusOK, "GET", path, nil, nil)
	load := time.Since(t0)
	var lat []time.Duration
	for i := range 200 {
		q := []string{"?page=1", fmt.Sprintf("?page=%d", 1+i*(*docs/50)/200), "?search=doc-0099", "?status=pending&page=3"}[i%4]
		t0 := time.Now()
		api.Must(http.StatusOK, "GET", path+q, nil, nil)
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	time.Sleep(30 * time.Second) // settle: caches expire, garbage is collected
	cm, cs := sample()
	t.Logf("RESULT layout=%s docs=%d sync=%s (%.0f docs/s) manager rss=%.0f MiB peak=%.0f MiB nats-server rss=%.0f MiB peak=%.0f MiB; documents list: index load %s, p50 %s p99 %s",
		layout, *docs, took.Round(time.Second), float64(*docs)/took.Seconds(), cm, peakM, cs, peakS,
		load.Round(time.Millisecond), lat[len(lat)/2].Round(100*time.Microsecond), lat[len(lat)*99/100].Round(100*time.Microsecond))
}
