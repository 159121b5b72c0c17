package exec_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	osexec "os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv names the variable that makes the test binary act as a child
// connector: TestMain runs the named mode instead of the tests.
const childEnv = "TRIBUTARY_EXEC_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

var out = json.NewEncoder(os.Stdout)

func send(kind string, fields map[string]any) {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["type"] = kind
	if err := out.Encode(fields); err != nil {
		os.Exit(99)
	}
}

func doc(id string) map[string]any {
	return map[string]any{"external_id": id, "title": "Doc " + id, "permissions": map[string]any{"public": true}}
}

// waitStdin blocks until stdin is closed.
func waitStdin(in *bufio.Reader) {
	for {
		if _, err := in.ReadString('\n'); err != nil {
			return
		}
	}
}

// runChild is a connector that misbehaves, or behaves, as mode says.
func runChild(mode string) int {
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadString('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "no request:", err)
		return 2
	}
	var req map[string]any
	if err := json.Unmarshal([]byte(line), &req); err != nil {
		fmt.Fprintln(os.Stderr, "bad request:", err)
		return 2
	}
	switch mode {
	case "echo": // the request, as a document's attributes
		d := doc("request")
		d["attributes"] = map[string]any{"request": req}
		send("emit", map[string]any{"document": d})
		send("done", nil)
	case "env": // the environment, as a document's attributes
		d := doc("env")
		d["attributes"] = map[string]any{"env": os.Environ()}
		send("emit", map[string]any{"document": d})
		send("done", nil)
	case "all": // every message type
		send("total", map[string]any{"total": 4})
		send("log", map[string]any{"level": "warn", "message": "from the child", "fields": map[string]any{"k": 1}})
		send("emit", map[string]any{"document": doc("a"), "content": "alpha", "content_type": "text/markdown"})
		send("scanned", nil)
		send("update", map[string]any{"document": doc("b"), "content_base64": base64.StdEncoding.EncodeToString([]byte{0, 1, 2})})
		send("scanned", map[string]any{"n": 2})
		d := doc("c")
		d["metadata"] = map[string]any{"mime_type": "text/html", "path": "c.html"}
		send("emit", map[string]any{"document": d, "content_base64": base64.StdEncoding.EncodeToString([]byte("<p>Hello <b>there</b></p>")), "extract": true})
		send("emit", map[string]any{"document": doc("d"), "content_base64": base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe}), "content_type": "application/x-unknown", "extract": true})
		send("checkpoint", map[string]any{"checkpoint": map[string]any{"pos": 3}})
		send("delete", map[string]any{"external_id": "gone"})
		send("error", map[string]any{"external_id": "bad", "error": "unreadable"})
		fmt.Println() // blank lines are allowed
		send("done", map[string]any{"checkpoint": map[string]any{"pos": 4}})
	case "garbage":
		fmt.Fprintln(os.Stderr, "about to print garbage")
		send("emit", map[string]any{"document": doc("a")})
		fmt.Println("hello, not JSON")
		waitStdin(in)
	case "unknown":
		send("bogus", nil)
		waitStdin(in)
	case "nodoc":
		send("emit", map[string]any{"document": map[string]any{"title": "no id"}})
		waitStdin(in)
	case "die": // 30 stderr lines, then exit 3
		for i := range 30 {
			fmt.Fprintf(os.Stderr, "stderr line %d\n", i)
		}
		return 3
	case "nodone":
		send("emit", map[string]any{"document": doc("a")})
	case "donefail":
		send("done", nil)
		fmt.Fprintln(os.Stderr, "cleanup failed")
		return 1
	case "fail":
		fmt.Fprintln(os.Stderr, "details on stderr")
		send("fail", map[string]any{"error": "source unreachable"})
		return 1
	case "linger": // done, then stays
		send("done", nil)
		time.Sleep(time.Hour)
	case "closestdout": // closes stdout without done, then stays
		send("emit", map[string]any{"document": doc("a")})
		_ = os.Stdout.Close()
		time.Sleep(time.Hour)
	case "afterdone":
		send("done", nil)
		send("emit", map[string]any{"document": doc("late")})
		waitStdin(in)
	case "long":
		fmt.Println(`{"type":"log","message":"` + strings.Repeat("x", 10_000) + `"}`)
		waitStdin(in)
	case "slow": // a document every 5ms, forever
		for i := 0; ; i++ {
			send("emit", map[string]any{"document": doc(fmt.Sprintf("doc-%d", i))})
			time.Sleep(5 * time.Millisecond)
		}
	case "checkpoints": // a document and a checkpoint every 5ms, forever
		for i := 0; ; i++ {
			send("emit", map[string]any{"document": doc(fmt.Sprintf("doc-%d", i))})
			send("checkpoint", map[string]any{"checkpoint": map[string]any{"pos": i + 1}})
			time.Sleep(5 * time.Millisecond)
		}
	case "ignoreterm": // survives stdin EOF and SIGTERM
		signal.Ignore(syscall.SIGTERM)
		d := doc("pid")
		d["attributes"] = map[string]any{"pid": os.Getpid()}
		send("emit", map[string]any{"document": d})
		waitStdin(in)
		fmt.Fprintln(os.Stderr, "stdin closed; staying")
		time.Sleep(time.Hour)
	case "politeexit": // exits 0 on stdin EOF, without done
		send("emit", map[string]any{"document": doc("a")})
		waitStdin(in)
		return 0
	case "grandchild": // leaves a process holding stdout, then ends well
		self, _ := os.Executable()
		gc := osexec.Command(self)
		gc.Env = []string{childEnv + "=sleeper", "GORACE=atexit_sleep_ms=0"}
		gc.Stdin = strings.NewReader("{}\n")
		gc.Stdout = os.Stdout
		if err := gc.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		d := doc("pid")
		d["attributes"] = map[string]any{"pid": gc.Process.Pid}
		send("emit", map[string]any{"document": d})
		send("done", nil)
	case "sleeper":
		time.Sleep(time.Hour)
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", mode)
		return 2
	}
	return 0
}
