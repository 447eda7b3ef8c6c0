// callers: a loop calling runtime.Callers for SECONDS of wall time, so that many samples land on
// the Go runtime's system stack (runtime.Callers → runtime.callers → runtime.systemstack, which
// switches to the thread's g0 stack). Above the g0 frames lies memory no current frame owns: an
// unwinder that keeps reading there invents callers (issue 20).
//
// Usage: callers [SECONDS=1.0]
// Build: go build -o callers callers.go
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

var sink uintptr

//go:noinline
func walk(pcs []uintptr) int {
	n := runtime.Callers(0, pcs)
	for _, pc := range pcs[:n] {
		sink ^= pc
	}
	return n
}

//go:noinline
func loop(deadline time.Time) int {
	pcs := make([]uintptr, 64)
	total := 0
	for time.Now().Before(deadline) {
		for i := 0; i < 1000; i++ {
			total += walk(pcs)
		}
	}
	return total
}

func main() {
	seconds := 1.0
	if len(os.Args) > 1 {
		s, err := strconv.ParseFloat(os.Args[1], 64)
		if err != nil || s < 0 || s > 3600 || len(os.Args) > 2 {
			fmt.Fprintln(os.Stderr, "usage: callers [SECONDS]")
			os.Exit(2)
		}
		seconds = s
	}
	n := loop(time.Now().Add(time.Duration(seconds * float64(time.Second))))
	fmt.Printf("callers: frames=%d sink=%x\n", n, sink)
}
