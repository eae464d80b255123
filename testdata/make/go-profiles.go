// Writes Go runtime profiles for pyrometer's test data: a delta allocs profile (net/http/pprof's
// allocs?seconds=2, whose inuse values go negative where memory was freed in the window) and a
// goroutine profile.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"
)

var kept [][]byte

//go:noinline
func fillCache(n, size int) {
	for i := 0; i < n; i++ {
		kept = append(kept, make([]byte, size))
	}
}

//go:noinline
func buildIndex(n int) map[int]string {
	m := make(map[int]string)
	for i := 0; i < n; i++ {
		m[i] = fmt.Sprintf("item-%d", i)
	}
	return m
}

var index map[int]string

//go:noinline
func dropCache() { kept = nil }

func blocked(wg *sync.WaitGroup, ch chan struct{}) { wg.Done(); <-ch }

func main() {
	runtime.MemProfileRate = 512
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go http.Serve(ln, nil)
	fillCache(400, 4096)
	index = buildIndex(20000)
	runtime.GC()
	done := make(chan []byte)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/debug/pprof/allocs?seconds=2")
		if err != nil {
			panic(err)
		}
		b, _ := io.ReadAll(resp.Body)
		done <- b
	}()
	time.Sleep(500 * time.Millisecond)
	dropCache()
	index = nil
	fillCache(100, 2048)
	runtime.GC()
	runtime.GC()
	b := <-done
	os.WriteFile("go.allocs-delta.pb.gz", b, 0o644)

	var wg sync.WaitGroup
	ch := make(chan struct{})
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go blocked(&wg, ch)
	}
	wg.Wait()
	f, _ := os.Create("go.goroutine.pb.gz")
	pprof.Lookup("goroutine").WriteTo(f, 0)
	f.Close()
}

