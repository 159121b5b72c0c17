// Package deploy_test proves the production kit in deploy/: every NATS config
// parses as nats-server reads it; the systemd units keep their hardening and
// their shutdown invariant; a real manager, worker and indexer, each as its
// own least-privilege user, run syncs on a server started from node-1.conf
// without one permission violation, while what a user must not do is refused;
// and the three node configs form a cluster on which the manager's
// --replicas 3 streams and buckets live.
package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tributary-sync/tributary/internal/connectors/builtin"
	"github.com/tributary-sync/tributary/internal/manager"
	"github.com/tributary-sync/tributary/internal/worker"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

var deployDir = filepath.Join("..", "..", "deploy")

// secrets are the environment the NATS configs read, as deploy/systemd/
// nats.env.example lists it.
var secrets = map[string]string{
	"TRIBUTARY_MANAGER_PASSWORD": "manager-pw-1",
	"TRIBUTARY_WORKER_PASSWORD":  "worker-pw-2",
	"TRIBUTARY_INDEXER_PASSWORD": "indexer-pw-3",
	"TRIBUTARY_ADMIN_PASSWORD":   "admin-pw-4",
	"TRIBUTARY_SYS_PASSWORD":     "sys-pw-5",
	"TRIBUTARY_ROUTE_PASSWORD":   "route-pw-6",
	"TRIBUTARY_NATS_ROUTE_1":     "nats-route://route:route-pw-6@nats-1.internal:6222",
	"TRIBUTARY_NATS_ROUTE_2":     "nats-route://route:route-pw-6@nats-2.internal:6222",
	"TRIBUTARY_NATS_ROUTE_3":     "nats-route://route:route-pw-6@nats-3.internal:6222",
}

func setSecrets(t *testing.T) {
	t.Helper()
	for k, v := range secrets {
		t.Setenv(k, v)
	}
}

func natsConfigs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(deployDir, "nats", "*.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no deploy/nats/*.conf")
	}
	return files
}

// TestNATSConfigsParse parses every NATS config as nats-server does, so that
// a typo fails CI, and checks the cluster and users the README promises.
func TestNATSConfigsParse(t *testing.T) {
	setSecrets(t)
	names := map[string]string{}
	nodes := 0
	for _, f := range natsConfigs(t) {
		opts, err := server.ProcessConfigFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !strings.HasPrefix(filepath.Base(f), "node-") {
			continue
		}
		nodes++
		if opts.ServerName == "" {
			t.Errorf("%s: no server_name", f)
		} else if other, ok := names[opts.ServerName]; ok {
			t.Errorf("%s and %s share server_name %q", f, other, opts.ServerName)
		}
		names[opts.ServerName] = f
		if !opts.JetStream || opts.StoreDir == "" {
			t.Errorf("%s: JetStream %v, store_dir %q", f, opts.JetStream, opts.StoreDir)
		}
		if opts.Cluster.Name != "tributary" || opts.Cluster.Port == 0 || len(opts.Routes) != 3 {
			t.Errorf("%s: cluster %q port %d with %d routes, want tributary with 3", f, opts.Cluster.Name, opts.Cluster.Port, len(opts.Routes))
		}
		if opts.Cluster.Username != "route" || opts.Cluster.Password != secrets["TRIBUTARY_ROUTE_PASSWORD"] {
			t.Errorf("%s: routes do not authenticate with the route user and its env password", f)
		}
		for _, r := range opts.Routes {
			if p, _ := r.User.Password(); r.User.Username() != "route" || p != secrets["TRIBUTARY_ROUTE_PASSWORD"] {
				t.Errorf("%s: route %s does not carry the route credentials", f, r.Redacted())
			}
		}
		if opts.SystemAccount != "SYS" {
			t.Errorf("%s: system account %q", f, opts.SystemAccount)
		}
		users := map[string]*server.User{}
		for _, u := range opts.Users {
			users[u.Username] = u
		}
		for name, env := range map[string]string{
			"manager": "TRIBUTARY_MANAGER_PASSWORD", "worker": "TRIBUTARY_WORKER_PASSWORD",
			"indexer": "TRIBUTARY_INDEXER_PASSWORD", "admin": "TRIBUTARY_ADMIN_PASSWORD",
		} {
			u := users[name]
			switch {
			case u == nil:
				t.Errorf("%s: no user %s", f, name)
			case u.Password != secrets[env]:
				t.Errorf("%s: user %s's password is not $%s", f, name, env)
			case u.Account == nil || u.Account.Name != "TRIBUTARY":
				t.Errorf("%s: user %s is not in account TRIBUTARY", f, name)
			case name != "admin" && u.Permissions == nil:
				t.Errorf("%s: user %s has no permissions: it may do anything", f, name)
			}
		}
	}
	if nodes != 3 {
		t.Errorf("%d node configs, want 3", nodes)
	}

	// No secret has a default: without one, the server refuses to start.
	for k := range secrets {
		t.Run("without "+k, func(t *testing.T) {
			setSecrets(t)
			if err := os.Unsetenv(k); err != nil {
				t.Fatal(err)
			}
			if _, err := server.ProcessConfigFile(filepath.Join(deployDir, "nats", "node-1.conf")); err == nil {
				t.Errorf("node-1.conf parsed without %s", k)
			}
		})
	}
}

// TestSystemdUnits checks what the units must keep: the hardening the README
// describes, and a stop timeout longer than the shutdown grace so that
// SIGTERM hand-off completes before systemd kills the process.
func TestSystemdUnits(t *testing.T) {
	for _, name := range []string{"tributary-manager.service", "tributary-worker@.service", "nats.service"} {
		t.Run(name, func(t *testing.T) {
			unit := readUnit(t, filepath.Join(deployDir, "systemd", name))
			for k, want := range map[string]string{
				"Restart": "on-failure", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "DynamicUser": "yes",
			} {
				if got := unit[k]; got != want {
					t.Errorf("%s=%q, want %q", k, got, want)
				}
			}
			for _, k := range []string{"EnvironmentFile", "StateDirectory", "ExecStart"} {
				if unit[k] == "" {
					t.Errorf("no %s=", k)
				}
			}
			stop, err := time.ParseDuration(unit["TimeoutStopSec"])
			if err != nil {
				t.Fatalf("TimeoutStopSec=%q: %v", unit["TimeoutStopSec"], err)
			}
			if name == "nats.service" {
				return
			}
			m := regexp.MustCompile(`--shutdown-grace[= ](\S+)`).FindStringSubmatch(unit["ExecStart"])
			if m == nil {
				t.Fatalf("ExecStart=%q sets no --shutdown-grace", unit["ExecStart"])
			}
			grace, err := time.ParseDuration(m[1])
			if err != nil {
				t.Fatal(err)
			}
			if stop < grace+5*time.Second {
				t.Errorf("TimeoutStopSec=%s leaves under 5s after --shutdown-grace=%s", stop, grace)
			}
		})
	}
}

// readUnit returns the last value of each key of a systemd unit.
func readUnit(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not key=value", path, line)
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// violations records the permission violations the server logs.
type violations struct {
	mu    sync.Mutex
	lines []string
	first chan struct{} // closed at the first violation
}

func (v *violations) log(format string, args ...any) {
	if line := fmt.Sprintf(format, args...); strings.Contains(line, "Violation") {
		v.mu.Lock()
		v.lines = append(v.lines, line)
		if len(v.lines) == 1 {
			close(v.first)
		}
		v.mu.Unlock()
	}
}

func (v *violations) Noticef(format string, args ...any) { v.log(format, args...) }
func (v *violations) Warnf(format string, args ...any)   { v.log(format, args...) }
func (v *violations) Fatalf(format string, args ...any)  { v.log(format, args...) }
func (v *violations) Errorf(format string, args ...any)  { v.log(format, args...) }
func (v *violations) Debugf(format string, args ...any)  {}
func (v *violations) Tracef(format string, args ...any)  {}

func (v *violations) snapshot() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.lines...)
}

// nodeOptions returns node-N.conf's options as nats-server reads them,
// moved to random loopback ports with the store in a temporary directory.
func nodeOptions(t *testing.T, n int) *server.Options {
	t.Helper()
	opts, err := server.ProcessConfigFile(filepath.Join(deployDir, "nats", fmt.Sprintf("node-%d.conf", n)))
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.HTTPHost, opts.HTTPPort = "", 0
	opts.Cluster.Host, opts.Cluster.Port = "127.0.0.1", -1
	opts.StoreDir = t.TempDir()
	opts.JetStreamMaxStore = 1 << 30
	opts.NoSigs = true
	return opts
}

func startServer(t *testing.T, opts *server.Options, v *violations) *server.Server {
	t.Helper()
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.SetLoggerV2(v, false, false, false)
	ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats server %s not ready", opts.ServerName)
	}
	return ns
}

// startNode starts node-1.conf as a single server: the same accounts, users,
// permissions and JetStream settings, without the cluster.
func startNode(t *testing.T) (*server.Server, *violations) {
	t.Helper()
	setSecrets(t)
	opts := nodeOptions(t, 1)
	opts.Cluster = server.ClusterOpts{}
	opts.Routes = nil
	v := &violations{first: make(chan struct{})}
	return startServer(t, opts, v), v
}

// client is a connection as one of the config's users, with the permission
// errors the server sent it.
type client struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	errs chan error
}

func connect(t *testing.T, ns *server.Server, user, passwordEnv string) *client {
	t.Helper()
	u, err := url.Parse(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, os.Getenv(passwordEnv))
	c := &client{errs: make(chan error, 64)}
	c.nc, err = nats.Connect(u.String(), nats.Name("deploy-test-"+user), nats.PermissionErrOnSubscribe(true),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case c.errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(c.nc.Close)
	if red := c.nc.ConnectedUrlRedacted(); strings.Contains(red, os.Getenv(passwordEnv)) {
		t.Errorf("redacted URL %q shows the password", red)
	}
	c.js, err = jetstream.New(c.nc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// denied runs op and requires the server to refuse it with a permissions
// violation naming subject. op is cancelled as soon as the violation
// arrives: a refused request has no answer to wait for.
func (c *client) denied(t *testing.T, what, subject string, op func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opErr := make(chan error, 1)
	go func() { opErr <- op(ctx) }()
	done := opErr // nil once op returned
	var result error
	for {
		select {
		case err := <-c.errs:
			if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), subject) {
				continue
			}
			cancel()
			if done != nil {
				result = <-done
			}
			if result == nil {
				t.Errorf("%s: succeeded despite %v", what, err)
			}
			return
		case result = <-done:
			done = nil
			if result == nil {
				t.Errorf("%s: allowed, want a permissions violation on %s", what, subject)
				return
			}
			// It failed; wait for the violation that says why.
		case <-ctx.Done():
			t.Errorf("%s: no permissions violation on %s (op: %v)", what, subject, result)
			return
		}
	}
}

// deployment is a manager and a worker, each connected as its own user.
type deployment struct {
	t    *testing.T
	viol *violations
	// ctx ends at the first permission violation: a request the server
	// refused is never answered, and would otherwise only time out.
	ctx    context.Context
	m      *manager.Manager
	mc, wc *client
	// metrics is the manager's registry.
	metrics *prometheus.Registry
}

// fatal fails the test, with the permission violations if there were any.
func (d *deployment) fatal(format string, args ...any) {
	d.t.Helper()
	if v := d.viol.snapshot(); len(v) > 0 {
		format += "\nthe code needed permissions the config does not grant:\n" + strings.Join(v, "\n")
	}
	d.t.Fatalf(format, args...)
}

// deploy starts a manager (--replicas) on managerNode and a worker hosting the
// built-in connectors on workerNode, as the manager and worker users.
func deploy(t *testing.T, viol *violations, managerNode, workerNode *server.Server, replicas int) *deployment {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	go func() {
		select {
		case <-viol.first:
			cancel()
		case <-ctx.Done():
		}
	}()
	d := &deployment{t: t, viol: viol, ctx: ctx, metrics: prometheus.NewRegistry()}

	d.mc = connect(t, managerNode, "manager", "TRIBUTARY_MANAGER_PASSWORD")
	m, err := manager.New(d.mc.nc, manager.Config{Replicas: replicas, ContentGCSettle: time.Millisecond,
		Metrics: d.metrics, Logger: log.Named("manager")})
	if err != nil {
		d.fatal("%v", err)
	}
	if err := m.Start(ctx); err != nil {
		d.fatal("manager start as user manager: %v", err)
	}
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	d.m = m

	d.wc = connect(t, workerNode, "worker", "TRIBUTARY_WORKER_PASSWORD")
	w, err := worker.New(d.wc.nc, worker.Config{Connectors: builtin.All(), Logger: log.Named("worker")})
	if err != nil {
		d.fatal("%v", err)
	}
	if err := w.Start(ctx); err != nil {
		d.fatal("worker start as user worker: %v", err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := w.Stop(sctx); err != nil {
			t.Errorf("worker stop: %v", err)
		}
	})
	return d
}

// exercise drives the manager through what an operator does over the API —
// create a source with content and credentials and sync it to the end; list
// sources, runs, connectors and workers; cancel a running sync and delete its
// source — and returns the completed run and its source.
func (d *deployment) exercise() (*state.Source, *state.Run) {
	d.t.Helper()
	ctx, m := d.ctx, d.m
	src, err := m.CreateSource(ctx, manager.CreateSource{
		Name: "deploy", Connector: "synthetic",
		Config:      json.RawMessage(`{"count":50,"size":64}`),
		Credentials: json.RawMessage(`{"token":"s3cret"}`),
	})
	if err != nil {
		d.fatal("create source: %v", err)
	}
	run, err := m.TriggerSync(ctx, src.ID, "", manager.TriggerManual)
	if err != nil {
		d.fatal("trigger sync: %v", err)
	}
	run = d.waitRun(run.ID, func(r *state.Run) bool { return r.Status.Terminal() })
	if run.Status != state.RunCompleted || run.DocumentsEmitted != 50 || run.DocumentsScanned != 50 {
		d.fatal("run %s: %s, %d scanned, %d emitted, error %q; want completed, 50, 50",
			run.ID, run.Status, run.DocumentsScanned, run.DocumentsEmitted, run.Error)
	}

	// A connection test and an action: core NATS requests from the manager
	// to the worker's micro service, carrying the source's credentials.
	if res, err := m.TestConnection(ctx, src.ID); err != nil || !res.OK {
		d.fatal("test connection: %+v, %v", res, err)
	}
	if res, err := m.ExecuteAction(ctx, src.ID, "echo", json.RawMessage(`{"message":"hi"}`)); err != nil || !strings.Contains(string(res.Result), `"has_credentials":true`) {
		d.fatal("echo action: %+v, %v", res, err)
	}

	if srcs, err := m.ListSources(ctx); err != nil || len(srcs) != 1 {
		d.fatal("list sources: %d, %v", len(srcs), err)
	}
	if runs, err := m.ListRuns(ctx, manager.RunFilter{SourceID: src.ID}); err != nil || len(runs) != 1 {
		d.fatal("list runs: %d, %v", len(runs), err)
	}
	if conns, err := m.ListConnectors(ctx); err != nil || len(conns) != len(builtin.All()) {
		d.fatal("list connectors: %d, %v", len(conns), err)
	}

	// A long sync, cancelled once it runs; then its source is deleted.
	slow, err := m.CreateSource(ctx, manager.CreateSource{
		Name: "slow", Connector: "synthetic", Config: json.RawMessage(`{"count":100000,"pace":"5ms"}`),
	})
	if err != nil {
		d.fatal("create source: %v", err)
	}
	srun, err := m.TriggerSync(ctx, slow.ID, "", manager.TriggerManual)
	if err != nil {
		d.fatal("trigger sync: %v", err)
	}
	d.waitRun(srun.ID, func(r *state.Run) bool { return r.Status != state.RunQueued })
	if _, err := m.CancelRun(ctx, srun.ID); err != nil {
		d.fatal("cancel run: %v", err)
	}
	if srun = d.waitRun(srun.ID, func(r *state.Run) bool { return r.Status.Terminal() }); srun.Status != state.RunCancelled {
		d.fatal("run %s: %s (%s), want cancelled", srun.ID, srun.Status, srun.Error)
	}
	if err := m.DeleteSource(ctx, slow.ID); err != nil {
		d.fatal("delete source: %v", err)
	}

	// The documents API: a page, a manual document and its content, its
	// deletion, and a collection of the content it leaves behind.
	if page, err := m.ListDocuments(ctx, src.ID, manager.DocumentFilter{Page: 1, Size: 10}); err != nil || page.Total != 50 {
		d.fatal("list documents: %v, %v", page, err)
	}
	text := "typed in by hand"
	doc, err := m.CreateDocument(ctx, src.ID, manager.DocumentInput{ExternalID: "by-hand", Content: &text})
	if err != nil {
		d.fatal("create document: %v", err)
	}
	obj, err := m.OpenContent(ctx, src.ID, state.DocID("by-hand"), false)
	if err != nil {
		d.fatal("open content: %v", err)
	}
	if b, err := io.ReadAll(obj); err != nil || string(b) != text {
		d.fatal("read content: %q, %v", b, err)
	}
	_ = obj.Close()
	if err := m.DeleteDocument(ctx, src.ID, state.DocID("by-hand")); err != nil {
		d.fatal("delete document: %v", err)
	}
	if res, err := m.CollectContent(ctx, map[string]struct{}{doc.ContentID: {}}); err != nil || res.Deleted != 1 {
		d.fatal("collect content: %+v, %v", res, err)
	}
	return src, run
}

// scrapeMetrics gathers the manager's metrics: every read JetStream
// answered, so each scrape-time metric is there.
func (d *deployment) scrapeMetrics() {
	d.t.Helper()
	fams, err := d.metrics.Gather()
	if err != nil {
		d.fatal("gather metrics: %v", err)
	}
	series := map[string]bool{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			series[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = true
		}
		if f.GetName() == "tributary_metrics_read_errors_total" {
			d.fatal("metrics reads failed: %v", f.GetMetric())
		}
	}
	for _, want := range []string{
		"tributary_consumer_pending_messages{consumer=manager,stream=" + events.StreamEvents + "}",
		"tributary_consumer_pending_messages{consumer=indexer,stream=" + events.StreamChanges + "}",
		"tributary_source_leases{}",
		"tributary_workers{}",
	} {
		if !series[want] {
			d.fatal("no %s in the manager's metrics", want)
		}
	}
}

// waitRun watches the run record until done(run).
func (d *deployment) waitRun(runID string, done func(*state.Run) bool) *state.Run {
	d.t.Helper()
	kw, err := d.m.Store().Runs.KV().Watch(d.ctx, runID)
	if err != nil {
		d.fatal("watch run: %v", err)
	}
	defer func() { _ = kw.Stop() }()
	var run state.Run
	for {
		select {
		case <-d.ctx.Done():
			d.fatal("run %s: still %s (%v)", runID, run.Status, d.ctx.Err())
		case e := <-kw.Updates():
			if e == nil {
				continue
			}
			if err := json.Unmarshal(e.Value(), &run); err != nil {
				d.fatal("%v", err)
			}
			if done(&run) {
				return &run
			}
		}
	}
}

// TestLeastPrivilegeUsers runs a manager, a worker and an indexer, each as its
// own user of the production config, through what they do; then tries what
// each must not do.
func TestLeastPrivilegeUsers(t *testing.T) {
	ns, viol := startNode(t)
	d := deploy(t, viol, ns, ns, 1)
	src, run := d.exercise()

	// The indexer reads the run's events and a document's content.
	ic := connect(t, ns, "indexer", "TRIBUTARY_INDEXER_PASSWORD")
	indexRun(d, ic, src.ID, run.ID)
	// It reports what it made of a document.
	page, err := d.m.ListDocuments(d.ctx, src.ID, manager.DocumentFilter{Page: 1, Size: 1})
	if err != nil {
		d.fatal("list documents: %v", err)
	}
	if err := events.ReportStatus(d.ctx, ic.nc, src.ID, events.StatusReport{DocID: state.DocID(page.Items[0].ExternalID), Status: events.DocStatusIndexed}); err != nil {
		d.fatal("indexer reports a status: %v", err)
	}

	// A scrape of the manager's metrics reads the lag of the applier and
	// of an indexer's change-feed consumer, the leases and the workers.
	if _, err := events.NewChangeFeed(d.ctx, ic.js, events.ChangeFeedConfig{Durable: "indexer"}); err != nil {
		d.fatal("indexer change feed: %v", err)
	}
	d.scrapeMetrics()

	// A second manager waits for the manager lock (and reads who holds it).
	m2, err := manager.New(connect(t, ns, "manager", "TRIBUTARY_MANAGER_PASSWORD").nc, manager.Config{})
	if err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithTimeout(d.ctx, time.Second)
	defer lcancel()
	if err := m2.Start(lctx); !errors.Is(err, context.DeadlineExceeded) {
		d.fatal("second manager start: %v, want it to wait for the lock until its deadline", err)
	}

	// An operator finds the worker's micro service (nats micro ls).
	admin := connect(t, ns, "admin", "TRIBUTARY_ADMIN_PASSWORD")
	ping, err := admin.nc.RequestWithContext(d.ctx, "$SRV.PING."+events.ActionServiceName, nil)
	if err != nil || !strings.Contains(string(ping.Data), `"name":"`+events.ActionServiceName+`"`) {
		d.fatal("micro ping: %v", err)
	}

	if v := viol.snapshot(); len(v) > 0 {
		d.fatal("permission violations")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wc := d.wc

	// What the worker must not do.
	wc.denied(t, "worker deletes a stream", "$JS.API.STREAM.DELETE."+events.StreamSync, func(ctx context.Context) error {
		return wc.js.DeleteStream(ctx, events.StreamSync)
	})
	wc.denied(t, "worker creates a stream", "$JS.API.STREAM.CREATE.ROGUE", func(ctx context.Context) error {
		_, err := wc.js.CreateStream(ctx, jetstream.StreamConfig{Name: "ROGUE", Subjects: []string{"rogue.>"}})
		return err
	})
	creds, err := wc.js.KeyValue(ctx, events.BucketCredentials) // stream info only: granted for state.Bind
	if err != nil {
		t.Fatal(err)
	}
	// The bucket is read from its leader (no direct gets): a get is a
	// stream message get, denied below; a direct get is denied too.
	wc.denied(t, "worker reads credentials", "$JS.API.STREAM.MSG.GET.KV_"+events.BucketCredentials, func(ctx context.Context) error {
		_, err := creds.Get(ctx, src.ID)
		return err
	})
	direct := "$JS.API.DIRECT.GET.KV_" + events.BucketCredentials + ".$KV." + events.BucketCredentials + "." + src.ID
	wc.denied(t, "worker reads credentials with a direct get", direct, func(ctx context.Context) error {
		_, err := wc.nc.RequestWithContext(ctx, direct, nil)
		return err
	})
	wc.denied(t, "worker reads credentials without direct get", "$JS.API.STREAM.MSG.GET.KV_"+events.BucketCredentials, func(ctx context.Context) error {
		req := fmt.Sprintf(`{"last_by_subj":"$KV.%s.%s"}`, events.BucketCredentials, src.ID)
		_, err := wc.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+events.BucketCredentials, []byte(req))
		return err
	})
	wc.denied(t, "worker listens to credential writes", "$KV."+events.BucketCredentials+".>", func(ctx context.Context) error {
		sub, err := wc.nc.SubscribeSync("$KV." + events.BucketCredentials + ".>")
		if err != nil {
			return err
		}
		_, err = sub.NextMsgWithContext(ctx)
		return err
	})
	wc.denied(t, "worker writes a run record", "$KV."+events.BucketRuns+"."+run.ID, func(ctx context.Context) error {
		_, err := wc.js.Publish(ctx, "$KV."+events.BucketRuns+"."+run.ID, []byte(`{}`))
		return err
	})
	wc.denied(t, "worker deletes the manager lock", "$KV."+events.BucketLeases+"."+manager.LockKey, func(ctx context.Context) error {
		kv, err := wc.js.KeyValue(ctx, events.BucketLeases)
		if err != nil {
			return err
		}
		return kv.Delete(ctx, manager.LockKey)
	})
	wc.denied(t, "worker requests a sync", events.SyncSubject("synthetic"), func(ctx context.Context) error {
		_, err := wc.js.Publish(ctx, events.SyncSubject("synthetic"), []byte(`{}`))
		return err
	})
	wc.denied(t, "worker cancels a run", events.CancelSubject(run.ID), func(ctx context.Context) error {
		_, err := wc.js.Publish(ctx, events.CancelSubject(run.ID), []byte(`{}`))
		return err
	})

	wc.denied(t, "worker requests an action", events.ActionSubject("synthetic", "echo"), func(ctx context.Context) error {
		_, err := wc.nc.RequestWithContext(ctx, events.ActionSubject("synthetic", "echo"), []byte(`{}`))
		return err
	})

	// What the indexer must not do.
	ic.denied(t, "indexer publishes an event", events.SubjectEventsPrefix, func(ctx context.Context) error {
		_, err := ic.js.Publish(ctx, events.EventSubject(src.ID, run.ID, events.TypeRunFailed), []byte(`{}`))
		return err
	})
	next := "$JS.API.CONSUMER.MSG.NEXT." + events.StreamEvents + "." + manager.ApplierConsumer
	ic.denied(t, "indexer pulls from the manager's consumer", next, func(ctx context.Context) error {
		_, err := ic.nc.RequestWithContext(ctx, next, []byte(`{"batch":1,"no_wait":true}`))
		return err
	})
	ic.denied(t, "indexer tests a connection", events.TestConnectionSubject("synthetic"), func(ctx context.Context) error {
		_, err := ic.nc.RequestWithContext(ctx, events.TestConnectionSubject("synthetic"), []byte(`{}`))
		return err
	})
	ic.denied(t, "indexer serves actions", events.ActionSubjectsAll, func(ctx context.Context) error {
		sub, err := ic.nc.SubscribeSync(events.ActionSubjectsAll)
		if err != nil {
			return err
		}
		_, err = sub.NextMsgWithContext(ctx)
		return err
	})
	ic.denied(t, "indexer deletes content", "$JS.API.STREAM.PURGE.OBJ_"+events.BucketContent, func(ctx context.Context) error {
		_, err := ic.nc.RequestWithContext(ctx, "$JS.API.STREAM.PURGE.OBJ_"+events.BucketContent, nil)
		return err
	})

	// The server logged the refusals: the check before them, that it logged
	// none during the sync, saw what it would have had to see.
	if v := viol.snapshot(); len(v) < 10 {
		t.Errorf("the server logged %d permission violations, want one per refusal:\n%s", len(v), strings.Join(v, "\n"))
	}
}

// indexRun reads the run's events through the indexer's durable consumer up
// to run.completed, and the content of its first document.
func indexRun(d *deployment, ic *client, sourceID, runID string) {
	d.t.Helper()
	ctx, fatal := d.ctx, d.fatal
	cons, err := ic.js.CreateOrUpdateConsumer(ctx, events.StreamEvents, jetstream.ConsumerConfig{
		Durable: "indexer", FilterSubject: events.RunEventSubjects(sourceID, runID),
		AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		fatal("indexer consumer: %v", err)
	}
	obs, err := ic.js.ObjectStore(ctx, events.BucketContent)
	if err != nil {
		fatal("indexer content store: %v", err)
	}
	var docs int
	for {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			fatal("indexer: after %d documents: %v", docs, err)
		}
		env, err := events.Decode(msg.Data())
		if err != nil {
			fatal("%v", err)
		}
		if err := msg.Ack(); err != nil {
			fatal("%v", err)
		}
		switch p := env.Payload().(type) {
		case *events.DocumentUpserted:
			if docs++; docs == 1 {
				if p.Document.ContentID == "" {
					fatal("document without content")
				}
				b, err := obs.GetBytes(ctx, p.Document.ContentID)
				if err != nil {
					fatal("indexer reads content %s: %v", p.Document.ContentID, err)
				}
				if len(b) != 64 {
					d.t.Errorf("content is %d bytes, want 64", len(b))
				}
			}
		case *events.RunCompleted:
			if docs != 50 {
				d.t.Errorf("indexer read %d documents, want 50", docs)
			}
			return
		}
	}
}

// TestThreeNodeCluster forms the cluster of node-1.conf … node-3.conf, its
// routes authenticated as configured, and runs the manager with --replicas 3
// on node 1, a worker on node 3 and an indexer on node 2 through the same
// operations; every stream and bucket then has three replicas.
func TestThreeNodeCluster(t *testing.T) {
	setSecrets(t)
	viol := &violations{first: make(chan struct{})}
	// Cluster ports, reserved: every node's routes name all three, as in
	// production, so they must be known before the first node starts.
	var ports []string
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, l.Addr().String())
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var nodes []*server.Server
	for n := 1; n <= 3; n++ {
		opts := nodeOptions(t, n)
		_, port, _ := net.SplitHostPort(ports[n-1])
		opts.Cluster.Port, _ = strconv.Atoi(port)
		// The configured routes, credentials and all, at the test's ports.
		for i, r := range opts.Routes {
			r.Host = ports[i]
		}
		nodes = append(nodes, startServer(t, opts, viol))
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := connect(t, nodes[1], "admin", "TRIBUTARY_ADMIN_PASSWORD")
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for ready := false; !ready; {
		select {
		case <-ctx.Done():
			for _, ns := range nodes {
				t.Logf("%s: %d remotes, JetStream peers %v", ns.Name(), ns.NumRemotes(), ns.JetStreamClusterPeers())
			}
			t.Fatal("the cluster did not form")
		case <-tick.C:
			// Every node routed to the two others, and a JetStream meta
			// leader (the only node that lists the peers) that knows all three.
			ready = true
			peers := 0
			for _, ns := range nodes {
				ready = ready && ns.NumRemotes() == 2
				peers = max(peers, len(ns.JetStreamClusterPeers()))
			}
			ready = ready && peers == 3
			if ready {
				_, err := admin.js.AccountInfo(ctx)
				ready = err == nil
			}
		}
	}

	d := deploy(t, viol, nodes[0], nodes[2], 3)
	src, run := d.exercise()
	indexRun(d, connect(t, nodes[1], "indexer", "TRIBUTARY_INDEXER_PASSWORD"), src.ID, run.ID)
	if v := viol.snapshot(); len(v) > 0 {
		d.fatal("permission violations")
	}

	var streams int
	for name := range admin.js.StreamNames(ctx).Name() {
		streams++
		st, err := admin.js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info := st.CachedInfo()
		if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			t.Errorf("stream %s: %d replicas configured, cluster %+v; want 3", name, info.Config.Replicas, info.Cluster)
		}
	}
	if want := 4 + 10 + 1; streams != want { // streams, KV buckets, object store
		t.Errorf("%d streams, want %d", streams, want)
	}
}
