package chaos

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/test/harness"
)

// natsNode is one real nats-server process.
type natsNode struct {
	name string
	url  string
	proc *harness.Proc
}

// startNATS runs n nats-server processes with JetStream, clustered when n > 1,
// and waits until JetStream answers through them.
func startNATS(t *testing.T, n int) []*natsNode {
	t.Helper()
	clientPorts, routePorts := freePorts(t, n), freePorts(t, n)
	var routes []string
	for _, p := range routePorts {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	nodes := make([]*natsNode, n)
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		dir := t.TempDir()
		conf := fmt.Sprintf("server_name: %s\nlisten: 127.0.0.1:%d\njetstream { store_dir: %q }\n", name, clientPorts[i], dir)
		if n > 1 {
			conf += fmt.Sprintf("cluster { name: chaos, listen: 127.0.0.1:%d, routes: [%s] }\n", routePorts[i], strings.Join(routes, ", "))
		}
		path := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		p := harness.Start(t, "nats-"+name, bins["nats-server"], "-c", path)
		nodes[i] = &natsNode{name: name, url: fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]), proc: p}
	}
	for _, nd := range nodes {
		nd.proc.WaitLine("Server is ready", 30*time.Second)
	}
	nc, js := connect(t, urls(nodes))
	defer nc.Close()
	harness.Eventually(t, time.Minute, 100*time.Millisecond, "JetStream available", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil
	})
	return nodes
}

func urls(nodes []*natsNode) string {
	var us []string
	for _, nd := range nodes {
		us = append(us, nd.url)
	}
	return strings.Join(us, ",")
}

func connect(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return ports
}

// streamLeader names the node leading the stream's replicas.
func streamLeader(t *testing.T, js jetstream.JetStream, stream string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info := s.CachedInfo()
	if info.Cluster == nil {
		return ""
	}
	return info.Cluster.Leader
}
