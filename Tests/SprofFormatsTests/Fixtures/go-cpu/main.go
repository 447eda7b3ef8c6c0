// Writes a CPU profile of two busy functions with runtime/pprof: the Go fixture sprof's pprof
// reader must read (see ../README.md for the command).
package main

import (
	"os"
	"runtime/pprof"
)

var sink uint64

//go:noinline
func hotLoop(n int) uint64 {
	x := uint64(1)
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

//go:noinline
func coldLoop(n int) uint64 { return hotLoop(n / 4) }

func main() {
	f, err := os.Create(os.Args[1])
	if err != nil {
		panic(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		panic(err)
	}
	for round := 0; round < 40; round++ {
		sink += hotLoop(20_000_000)
		sink += coldLoop(20_000_000)
	}
	pprof.StopCPUProfile()
	f.Close()
}
