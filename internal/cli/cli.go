// Package cli holds what the manager and worker commands share: flags that
// also read environment variables, the logger, and the connectors a worker
// hosts.
package cli

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tributary-sync/tributary/internal/connectors/builtin"
	execconn "github.com/tributary-sync/tributary/internal/connectors/exec"
	"github.com/tributary-sync/tributary/pkg/connector"
)

// EnvName is the environment variable a flag reads: TRIBUTARY_ and the flag
// name in upper case with '-' as '_' (--http-addr reads TRIBUTARY_HTTP_ADDR).
func EnvName(flagName string) string {
	return "TRIBUTARY_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs, taking each flag's value from its environment
// variable unless the flag is given on the command line. The usage text
// names the variables.
func Parse(fs *flag.FlagSet, args []string) error {
	fs.VisitAll(func(f *flag.Flag) {
		f.Usage = fmt.Sprintf("%s (env %s)", f.Usage, EnvName(f.Name))
	})
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	return fs.Parse(args)
}

// RedactURLs returns a comma-separated list of NATS URLs with any password
// replaced by "xxxxx", for logs and errors.
func RedactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// NewLogger builds the process logger: console encoding for people, JSON
// for machines.
func NewLogger(format, level string) (*zap.Logger, zap.AtomicLevel, error) {
	lvl, err := zap.ParseAtomicLevel(level)
	if err != nil {
		return nil, lvl, fmt.Errorf("--log-level %q: %w", level, err)
	}
	var cfg zap.Config
	switch format {
	case "console", "":
		cfg = zap.NewDevelopmentConfig()
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
		cfg.Development = false
	case "json":
		cfg = zap.NewProductionConfig()
		cfg.EncoderConfig.TimeKey = "time"
		cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	default:
		return nil, lvl, fmt.Errorf("--log-format %q: want console or json", format)
	}
	cfg.Level = lvl
	cfg.DisableStacktrace = true
	cfg.Sampling = nil
	log, err := cfg.Build()
	if err != nil {
		return nil, lvl, err
	}
	return log, lvl, nil
}

// Connectors returns the connectors a worker hosts: the built-in ones and,
// when execFile is not empty, the exec connectors it declares.
func Connectors(execFile string) ([]connector.Connector, error) {
	conns := builtin.All()
	if execFile == "" {
		return conns, nil
	}
	ecs, err := execconn.Load(execFile)
	if err != nil {
		return nil, fmt.Errorf("--exec-connectors: %w", err)
	}
	for _, c := range ecs {
		conns = append(conns, c)
	}
	return conns, nil
}

// ConnectorNames lists the names of connectors, for a log line.
func ConnectorNames(conns []connector.Connector) []string {
	names := make([]string, len(conns))
	for i, c := range conns {
		names[i] = c.Manifest().Name
	}
	return names
}
