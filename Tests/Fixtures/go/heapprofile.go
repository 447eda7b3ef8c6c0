// Build and run: go build -o heapprofile heapprofile.go && ./heapprofile heap.pb.gz
//
// heapprofile writes a Go heap profile (four sample types: alloc_objects, alloc_space,
// inuse_objects, inuse_space) to the file named by its argument.
package main

import (
	"os"
	"runtime"
	"runtime/pprof"
)

var keep [][]byte
var sink []byte

//go:noinline
func retain(n int) {
	for i := 0; i < n; i++ {
		keep = append(keep, make([]byte, 64<<10))
	}
}

//go:noinline
func churn(n int) {
	for i := 0; i < n; i++ {
		sink = make([]byte, 1<<10)
		sink[0] = byte(i)
	}
}

func main() {
	runtime.MemProfileRate = 1
	retain(16)
	churn(4096)
	runtime.GC()
	f, err := os.Create(os.Args[1])
	if err != nil {
		panic(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		panic(err)
	}
}
