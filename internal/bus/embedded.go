// Package bus starts the embedded NATS server and declares the JetStream
// streams Tributary runs on.
package bus

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
)

// EmbeddedConfig configures the NATS server the manager embeds when no
// external NATS is given.
type EmbeddedConfig struct {
	// StoreDir is where JetStream keeps its files. Required.
	StoreDir string
	// Listen is the client address, host:port. Empty means the server takes
	// no network clients: only in-process connections.
	Listen string
	// SyncAlways makes JetStream fsync every write before acknowledging it.
	// Off, JetStream flushes every SyncInterval (2 minutes by default) and an
	// acknowledged write can be lost on power loss (not on a process crash).
	SyncAlways bool
	// ServerName names the server; default "tributary".
	ServerName string
	// Logger receives the server's log lines; nil discards them.
	Logger *zap.Logger
}

// StartEmbedded starts a NATS server with JetStream and waits until it takes
// connections.
func StartEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	if cfg.StoreDir == "" {
		return nil, fmt.Errorf("bus: embedded server needs a store directory")
	}
	opts := &server.Options{
		ServerName: cfg.ServerName,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		SyncAlways: cfg.SyncAlways,
		NoSigs:     true,
		MaxPayload: 8 << 20,
	}
	if opts.ServerName == "" {
		opts.ServerName = "tributary"
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("bus: listen address %q: %w", cfg.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("bus: listen port %q: %w", port, err)
		}
		opts.Host, opts.Port = host, p
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("bus: embedded server: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(&natsLogger{l: cfg.Logger.Named("nats").Sugar()}, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("bus: embedded server did not start (is %s in use?)", cfg.Listen)
	}
	return ns, nil
}

type natsLogger struct{ l *zap.SugaredLogger }

func (n *natsLogger) Noticef(format string, v ...any) { n.l.Debugf(format, v...) }
func (n *natsLogger) Warnf(format string, v ...any)   { n.l.Warnf(format, v...) }
func (n *natsLogger) Fatalf(format string, v ...any)  { n.l.Errorf(format, v...) }
func (n *natsLogger) Errorf(format string, v ...any)  { n.l.Errorf(format, v...) }
func (n *natsLogger) Debugf(format string, v ...any)  { n.l.Debugf(format, v...) }
func (n *natsLogger) Tracef(format string, v ...any)  {}
