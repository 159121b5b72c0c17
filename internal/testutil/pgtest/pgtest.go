// Package pgtest starts a throwaway PostgreSQL server for tests: a cluster
// made with initdb in a temporary directory, served by a postgres process on a
// free loopback port, with password (SCRAM) authentication, and removed when
// it stops.
//
// It uses the server binaries of the machine: $PGTEST_BIN (a directory),
// else the newest /usr/lib/postgresql/<version>/bin (Debian's layout), else
// initdb and postgres on PATH. PostgreSQL refuses to run as root, so when the
// tests run as root the cluster is made and served as the "postgres" system
// user (or "nobody" when there is none), in a directory that user owns.
//
// A package's TestMain starts one server for all its tests:
//
//	var pg *pgtest.Server
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }
//
//	func TestX(t *testing.T) {
//		db := pgtest.Need(t, pg).NewDatabase(t) // skips when no server could start
//		...
//	}
//
// When no server can start (no binaries, no user to run them as), Need skips
// the test saying why; with PGTEST_REQUIRE=1 in the environment it fails
// instead, for CI machines that are meant to have PostgreSQL.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the name of the cluster's superuser.
const Superuser = "tributary"

// Server is a running throwaway PostgreSQL server.
type Server struct {
	// Host and Port are where it listens (TCP, loopback).
	Host string
	Port int
	// User and Password are its superuser's.
	User     string
	Password string
	// Version is the server's major version, as its binaries report it.
	Version string

	dir  string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
	seq  atomic.Int64

	stopOnce sync.Once
	stopErr  error
}

// Main starts a server, runs the tests and stops the server, and returns the
// exit code for os.Exit. When the server cannot start, *srv stays nil and the
// tests run anyway (Need skips the ones that want it); the reason is printed
// and kept for Need.
func Main(m *testing.M, srv **Server) int {
	s, err := Start()
	if err != nil {
		startErr = err
		fmt.Fprintf(os.Stderr, "pgtest: postgresql not available: %v\n", err)
	} else {
		*srv = s
	}
	code := m.Run()
	if s != nil {
		if err := s.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stop: %v\n", err)
		}
	}
	return code
}

var startErr error

// Need returns srv, or skips the test (fails it with PGTEST_REQUIRE=1) when
// srv is nil because the server could not start.
func Need(t testing.TB, srv *Server) *Server {
	t.Helper()
	if srv != nil {
		return srv
	}
	reason := "pgtest.Main did not run"
	if startErr != nil {
		reason = startErr.Error()
	}
	if os.Getenv("PGTEST_REQUIRE") == "1" {
		t.Fatalf("postgresql not available (PGTEST_REQUIRE=1): %s", reason)
	}
	t.Skipf("postgresql not available: %s", reason)
	return nil
}

// New starts a server for one test and stops it when the test ends; it
// skips the test (fails it with PGTEST_REQUIRE=1) when no server can start.
// Prefer Main for a package whose tests all want one.
func New(t testing.TB) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		if os.Getenv("PGTEST_REQUIRE") == "1" {
			t.Fatalf("postgresql not available (PGTEST_REQUIRE=1): %v", err)
		}
		t.Skipf("postgresql not available: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("pgtest: stop: %v", err)
		}
	})
	return s
}

// Start makes a cluster in a new temporary directory and starts a server on
// it; Stop stops it and removes the directory.
func Start() (*Server, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	cred, owner, err := runAs()
	if err != nil {
		return nil, err
	}
	parent := ""
	if owner != nil && !enterable(os.TempDir()) {
		// The server's user could not reach a directory under $TMPDIR.
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	s := &Server{Host: "127.0.0.1", User: Superuser, Password: randomHex(12), dir: dir, log: &syncBuffer{}, done: make(chan struct{})}
	if err := s.start(bin, cred, owner); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *Server) start(bin string, cred *syscall.Credential, owner *user.User) error {
	data, sock := filepath.Join(s.dir, "data"), filepath.Join(s.dir, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return err
	}
	pwfile := filepath.Join(s.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		return err
	}
	if owner != nil {
		// The server's user must own its directory (and read the password).
		uid, _ := strconv.Atoi(owner.Uid)
		gid, _ := strconv.Atoi(owner.Gid)
		for _, p := range []string{s.dir, sock, pwfile} {
			if err := os.Chown(p, uid, gid); err != nil {
				return fmt.Errorf("give %s to user %s: %w", p, owner.Username, err)
			}
		}
	}
	if err := os.Chmod(s.dir, 0o700); err != nil { //nolint:gosec // a directory: its owner must enter it
		return err
	}

	out, err := s.command(filepath.Join(bin, "postgres"), cred, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s --version: %w: %s", filepath.Join(bin, "postgres"), err, bytes.TrimSpace(out))
	}
	s.Version = versionOf(string(out))

	initdb := s.command(filepath.Join(bin, "initdb"), cred, "-D", data, "-U", Superuser, "--pwfile", pwfile,
		"--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, lastLines(string(out), 10))
	}

	// A free port: taken from the kernel and released. Another process may
	// grab it in between, so a failed start is tried again on a new port.
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return err
		}
		s.Port = port
		if lastErr = s.serve(bin, cred, data, sock); lastErr == nil {
			return nil
		}
	}
	return lastErr
}

func (s *Server) serve(bin string, cred *syscall.Credential, data, sock string) error {
	s.log = &syncBuffer{}
	s.done = make(chan struct{})
	cmd := s.command(filepath.Join(bin, "postgres"), cred, "-D", data, "-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+sock,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=100", "-c", "shared_buffers=16MB", "-c", "logging_collector=off")
	cmd.Stdout, cmd.Stderr = s.log, s.log
	// The server dies with the test binary, even a killed one (SIGQUIT is
	// PostgreSQL's immediate shutdown).
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	s.cmd = cmd
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("postgres exited on start: %s", lastLines(s.log.String(), 10))
		case <-ctx.Done():
			s.kill()
			return fmt.Errorf("postgres did not accept connections within a minute: %w: %s", err, lastLines(s.log.String(), 10))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) command(name string, cred *syscall.Credential, args ...string) *exec.Cmd {
	// The server binaries this package found; Stop ends the server.
	cmd := exec.CommandContext(context.Background(), name, args...) //nolint:gosec // see above
	// A working directory the server's user can enter.
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	return cmd
}

// DSN returns a connection string for database db as the superuser, with the
// password.
func (s *Server) DSN(db string) string {
	return s.DSNWithoutPassword(db) + " password=" + s.Password
}

// DSNWithoutPassword returns a connection string for database db as the
// superuser, without the password.
func (s *Server) DSNWithoutPassword(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", s.Host, s.Port, s.User, db)
}

// Log returns what the server has written so far.
func (s *Server) Log() string { return s.log.String() }

// Database is a database made for one test.
type Database struct {
	Server *Server
	Name   string
	// Conn is a connection to it as the superuser, closed when the test ends.
	Conn *pgx.Conn
}

// DSN returns a connection string for the database, with the password.
func (d *Database) DSN() string { return d.Server.DSN(d.Name) }

// DSNWithoutPassword returns a connection string for the database without
// the password.
func (d *Database) DSNWithoutPassword() string { return d.Server.DSNWithoutPassword(d.Name) }

// Exec runs SQL statements on the database, failing the test on error.
func (d *Database) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := d.Conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// NewDatabase creates an empty database for the test and drops it when the
// test ends.
func (s *Server) NewDatabase(t testing.TB) *Database {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("test_%d_%s", s.seq.Add(1), randomHex(4))
	admin, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer func() { _ = admin.Close(ctx) }()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		admin, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err != nil {
			t.Errorf("pgtest: connect to drop %s: %v", name, err)
			return
		}
		defer func() { _ = admin.Close(ctx) }()
		if _, err := admin.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	conn, err := pgx.Connect(ctx, s.DSN(name))
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", name, err)
	}
	t.Cleanup(func() { _ = conn.Close(ctx) })
	return &Database{Server: s, Name: name, Conn: conn}
}

// Stop stops the server (fast shutdown, then a kill after 10 s) and removes
// its directory. It may be called more than once.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			_ = s.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				s.kill()
			}
		}
		s.stopErr = os.RemoveAll(s.dir)
	})
	return s.stopErr
}

func (s *Server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// enterable reports whether every user may enter dir and its parents.
func enterable(dir string) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// findBin returns the directory of initdb and postgres.
func findBin() (string, error) {
	if d := os.Getenv("PGTEST_BIN"); d != "" {
		return d, checkBin(d)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionNum(dirs[i]) > versionNum(dirs[j]) })
	for _, d := range dirs {
		if checkBin(d) == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if checkBin(d) == nil {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, postgres) in /usr/lib/postgresql/*/bin, on PATH or in $PGTEST_BIN; install the postgresql package")
}

func checkBin(d string) error {
	for _, name := range []string{"initdb", "postgres"} {
		if fi, err := os.Stat(filepath.Join(d, name)); err != nil || fi.IsDir() { //nolint:gosec // test binaries looked up on purpose
			return fmt.Errorf("no %s in %s", name, d)
		}
	}
	return nil
}

func versionNum(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// runAs returns the credentials to run the server with when this process is
// root (nil otherwise), and that user.
func runAs() (*syscall.Credential, *user.User, error) {
	if os.Geteuid() != 0 {
		return nil, nil, nil
	}
	var u *user.User
	var err error
	for _, name := range []string{"postgres", "nobody"} {
		if u, err = user.Lookup(name); err == nil {
			break
		}
	}
	if u == nil {
		return nil, nil, fmt.Errorf("running as root and no postgres or nobody user to run the server as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, nil, fmt.Errorf("user %s has a non-numeric uid or gid", u.Username)
	}
	// No supplementary groups: not root's.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, u, nil
}

func freePort() (int, error) {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func versionOf(out string) string {
	f := strings.Fields(out)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
