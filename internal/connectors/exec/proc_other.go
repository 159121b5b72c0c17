//go:build !unix

package exec

import (
	"os"
	"os/exec"
)

func ownGroup(*exec.Cmd) {}

// terminate has no gentle form here: the child is killed.
func terminate(cmd *exec.Cmd) error { return cmd.Process.Kill() }

func kill(cmd *exec.Cmd) error { return cmd.Process.Kill() }

func exitSignal(*os.ProcessState) string { return "" }
