package qos

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

func frame(c Class, seq, size int) []byte {
	b := make([]byte, max(size, 3))
	b[0], b[1], b[2] = byte(c), byte(seq>>8), byte(seq)
	return b
}

func TestParseAndNames(t *testing.T) {
	for c := range Class(NumClasses) {
		got, ok := Parse(c.String())
		if !ok || got != c {
			t.Fatalf("Parse(%q) = %v, %v", c.String(), got, ok)
		}
	}
	if _, ok := Parse("gold"); ok {
		t.Fatal("Parse accepted an unknown class")
	}
	if Class(7).Valid() || Class(7).String() != "class(7)" {
		t.Fatalf("class 7: valid=%v %q", Class(7).Valid(), Class(7).String())
	}
}

// Control is served strictly first; within a class order is FIFO.
func TestQueueControlFirstThenFIFO(t *testing.T) {
	q := NewQueue(Config{})
	for i := range 10 {
		if err := q.Push(Bulk, frame(Bulk, i, 100)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		_ = q.Push(Control, frame(Control, i, 50))
	}
	for i := range 3 {
		b, c, ok := q.Pop()
		if !ok || c != Control || b[2] != byte(i) {
			t.Fatalf("pop %d: class %v seq %d ok %v, want control %d", i, c, b[2], ok, i)
		}
	}
	for i := range 10 {
		b, c, ok := q.Pop()
		if !ok || c != Bulk || b[2] != byte(i) {
			t.Fatalf("bulk pop %d: class %v seq %d", i, c, b[2])
		}
	}
	if _, _, ok := q.Pop(); ok || q.Len() != 0 || q.Bytes() != 0 {
		t.Fatalf("queue not empty: %d frames %d bytes", q.Len(), q.Bytes())
	}
}

// With every class backlogged by equal frames, service follows the weights
// 8:4:2:1 and a frame of a higher class overtakes the lower backlog.
func TestQueueWeightedRoundRobin(t *testing.T) {
	q := NewQueue(Config{MaxFrames: 10000, MaxBytes: 100 << 20})
	for i := range 800 {
		for c := Interactive; c < NumClasses; c++ {
			_ = q.Push(c, frame(c, i, 1500))
		}
	}
	got := map[Class]int{}
	for range 1500 { // 100 full rounds of 8+4+2+1 frames
		_, c, ok := q.Pop()
		if !ok {
			t.Fatal("queue ran dry")
		}
		got[c]++
	}
	want := map[Class]int{Interactive: 800, Streaming: 400, Bulk: 200, BestEffort: 100}
	for c, w := range want {
		if got[c] != w {
			t.Errorf("%v served %d, want %d (all: %v)", c, got[c], w, got)
		}
	}
}

// An interactive frame queued behind a long bulk backlog leaves within one
// round, not after the backlog.
func TestQueueInteractiveOvertakesBulk(t *testing.T) {
	q := NewQueue(Config{})
	for i := range 500 {
		_ = q.Push(Bulk, frame(Bulk, i, 1200))
	}
	for range 5 {
		q.Pop() // the round robin is in the middle of bulk
	}
	_ = q.Push(Interactive, frame(Interactive, 0, 200))
	for n := 1; ; n++ {
		_, c, ok := q.Pop()
		if !ok {
			t.Fatal("interactive frame never left")
		}
		if c == Interactive {
			if n > 3 { // bulk's remaining deficit: 2×1500 bytes = 2 frames of 1200
				t.Fatalf("interactive frame left after %d bulk frames", n-1)
			}
			return
		}
	}
}

// Starvation freedom: under a continuous flood of interactive and control
// frames, best-effort is still served within a bounded number of pops.
func TestQueueNoStarvation(t *testing.T) {
	q := NewQueue(Config{ControlBurst: 8, MaxFrames: 100000, MaxBytes: 1 << 30})
	_ = q.Push(BestEffort, frame(BestEffort, 0, 1500))
	_ = q.Push(Bulk, frame(Bulk, 0, 1500))
	served := map[Class]int{}
	for i := 0; i < 2000; i++ {
		// The flood: every pop is matched by new control and interactive frames.
		_ = q.Push(Control, frame(Control, i, 100))
		_ = q.Push(Interactive, frame(Interactive, i, 1500))
		_, c, _ := q.Pop()
		served[c]++
		if served[BestEffort] > 0 && served[Bulk] > 0 {
			if i > 200 {
				t.Fatalf("low classes served only after %d pops", i)
			}
			return
		}
	}
	t.Fatalf("starved: served %v", served)
}

// Bounded memory: the queue never holds more than MaxFrames / MaxBytes;
// lower classes are evicted for higher ones, never the reverse.
func TestQueueBoundedMemory(t *testing.T) {
	q := NewQueue(Config{MaxFrames: 100, MaxBytes: 64 << 10})
	for i := range 1000 {
		c := Class(i % NumClasses)
		_ = q.Push(c, frame(c, i, 100+i%1400))
		if q.Len() > 100 || q.Bytes() > 64<<10 {
			t.Fatalf("after %d pushes: %d frames, %d bytes", i+1, q.Len(), q.Bytes())
		}
	}
	if q.LenClass(Control) == 0 || q.Dropped(BestEffort) == 0 {
		t.Fatalf("control %d queued, best-effort dropped %d", q.LenClass(Control), q.Dropped(BestEffort))
	}
	// Fill with control only: lower classes go first, then control is refused.
	for i := range 200 {
		_ = q.Push(Control, frame(Control, i, 100))
	}
	if q.LenClass(Control) != 100 || q.Len() != 100 {
		t.Fatalf("control %d of %d frames", q.LenClass(Control), q.Len())
	}
	if err := q.Push(Interactive, frame(Interactive, 0, 10)); !errors.Is(err, ErrFull) {
		t.Fatalf("push into a queue full of control: %v", err)
	}
	if err := q.Push(Control, make([]byte, 65<<10)); !errors.Is(err, ErrFull) || q.Len() != 100 {
		t.Fatalf("oversized frame: %v, %d frames left", err, q.Len())
	}
	// Draining returns exactly what is accounted.
	n, bytes, want := 0, 0, q.Bytes()
	for {
		b, _, ok := q.Pop()
		if !ok {
			break
		}
		n, bytes = n+1, bytes+len(b)
	}
	if n != 100 || q.Bytes() != 0 || bytes != want {
		t.Fatalf("drained %d frames, %d bytes; %d left", n, bytes, q.Bytes())
	}
}

// The fifo releases its backing array as it drains (no growth on a
// steady-state queue).
func TestQueueSteadyStateDoesNotGrow(t *testing.T) {
	q := NewQueue(Config{})
	for i := range 100000 {
		_ = q.Push(Bulk, frame(Bulk, i, 10))
		_ = q.Push(Bulk, frame(Bulk, i, 10))
		q.Pop()
		q.Pop()
	}
	if c := cap(q.q[Bulk].items); c > 256 {
		t.Fatalf("bulk fifo capacity grew to %d", c)
	}
}

// A Link sends directly while idle and in class order while backed up by a
// concurrent sender.
func TestLinkBackedUpSendsInClassOrder(t *testing.T) {
	var mu sync.Mutex
	var got []Class
	release := make(chan struct{})
	first := true
	l := NewLink(func(b []byte) error {
		mu.Lock()
		wait := first
		first = false
		got = append(got, Class(b[0]))
		mu.Unlock()
		if wait {
			<-release // the first send blocks: the link is backed up
		}
		return nil
	}, LinkConfig{})
	done := make(chan error)
	go func() { done <- l.Send(BestEffort, frame(BestEffort, 0, 10)) }()
	for l.Stats().Direct == 0 {
		time.Sleep(time.Millisecond)
	}
	for i := range 5 {
		if err := l.Send(Bulk, frame(Bulk, i, 10)); err != nil {
			t.Fatal(err)
		}
	}
	_ = l.Send(Interactive, frame(Interactive, 0, 10))
	_ = l.Send(Control, frame(Control, 0, 10))
	if s := l.Stats(); s.Queued != 7 || s.Len != 7 {
		t.Fatalf("stats while backed up: %+v", s)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []Class{BestEffort, Control, Interactive, Bulk, Bulk, Bulk, Bulk, Bulk}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("sent %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("sent %v, want %v", got, want)
		}
	}
	if s := l.Stats(); s.Len != 0 || s.Direct != 1 {
		t.Fatalf("after drain: %+v", s)
	}
}

// A paced link keeps its rate and still sends control and interactive
// frames before the bulk backlog.
func TestLinkPacedOrdersBacklog(t *testing.T) {
	var mu sync.Mutex
	var got []Class
	var at []time.Time
	l := NewLink(func(b []byte) error {
		mu.Lock()
		got, at = append(got, Class(b[0])), append(at, time.Now())
		mu.Unlock()
		return nil
	}, LinkConfig{Rate: 100 << 10, Burst: 4 << 10})
	defer l.Close()
	start := time.Now()
	for i := range 40 {
		_ = l.Send(Bulk, frame(Bulk, i, 1000)) // 40 KB at 100 KB/s: ~0.36 s after the burst
	}
	_ = l.Send(Interactive, frame(Interactive, 0, 100))
	_ = l.Send(Control, frame(Control, 0, 100))
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 42 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sent %d of 42 frames", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	pos := map[Class]int{}
	for i, c := range got {
		if _, ok := pos[c]; !ok {
			pos[c] = i
		}
	}
	// The burst (4 KB) lets ~5 bulk frames out at once; control and
	// interactive come next, before the rest of the backlog.
	if pos[Control] > 8 || pos[Interactive] > 9 || pos[Control] > pos[Interactive] {
		t.Fatalf("control at %d, interactive at %d of %v", pos[Control], pos[Interactive], got)
	}
	if el := at[len(at)-1].Sub(start); el < 250*time.Millisecond {
		t.Fatalf("42 KB left in %v: not paced at 100 KB/s", el)
	}
}

func TestLinkClose(t *testing.T) {
	l := NewLink(func([]byte) error { return nil }, LinkConfig{Rate: 1000, Burst: 1000})
	_ = l.Send(Bulk, make([]byte, 2000))
	_ = l.Send(Bulk, make([]byte, 10))
	l.Close()
	if err := l.Send(Bulk, make([]byte, 10)); !errors.Is(err, ErrClosed) || l.Stats().Len != 0 {
		t.Fatalf("send after close: %v, %d queued", err, l.Stats().Len)
	}
}

// BenchmarkSendQueueVsDirect measures the queue's cost on the send path: the
// same 1200-byte datagrams written to a loopback UDP socket directly and
// through an idle Link (the path every mesh frame takes), in the same run;
// "queue/direct" is the ratio of the two (1.00 = free).
func BenchmarkSendQueueVsDirect(b *testing.B) {
	rx, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer rx.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, err := rx.Read(buf); err != nil {
				return
			}
		}
	}()
	tx, err := net.DialUDP("udp", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Close()
	payload := bytes.Repeat([]byte{0xab}, 1200)
	send := func(p []byte) error { _, err := tx.Write(p); return err }
	l := NewLink(send, LinkConfig{})
	b.ReportAllocs()
	b.ResetTimer()
	// Alternate blocks of each so that warm-up and machine load hit both.
	var direct, queued time.Duration
	for done := 0; done < b.N; {
		n := min(1000, b.N-done)
		t0 := time.Now()
		for range n {
			_ = send(payload)
		}
		t1 := time.Now()
		for range n {
			_ = l.Send(Bulk, payload)
		}
		direct, queued = direct+t1.Sub(t0), queued+time.Since(t1)
		done += n
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(direct.Nanoseconds())/n, "direct-ns/op")
	b.ReportMetric(float64(queued.Nanoseconds())/n, "queue-ns/op")
	b.ReportMetric(float64(queued)/float64(max(direct, 1)), "queue/direct")
	if s := l.Stats(); s.Direct != uint64(b.N) {
		b.Fatalf("idle link queued frames: %+v", s)
	}
}

// A backed-up link with SendBatch drains its queue in batches of at most
// MaxBatch, in the queue's order (control first, then the other classes),
// and counts the frames a batch did not send as send errors.
func TestLinkBackedUpSendsBatches(t *testing.T) {
	var mu sync.Mutex
	var got []Class
	var sizes []int
	release := make(chan struct{})
	l := NewLink(func(b []byte) error {
		<-release // the direct send blocks: the link is backed up
		mu.Lock()
		got = append(got, Class(b[0]))
		mu.Unlock()
		return nil
	}, LinkConfig{MaxBatch: 4, SendBatch: func(bs [][]byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, len(bs))
		for _, b := range bs {
			got = append(got, Class(b[0]))
		}
		if len(sizes) == 3 {
			return 1, errors.New("no session") // the rest of this batch is lost
		}
		return len(bs), nil
	}})
	done := make(chan error)
	go func() { done <- l.Send(BestEffort, frame(BestEffort, 0, 10)) }()
	for l.Stats().Direct == 0 {
		time.Sleep(time.Millisecond)
	}
	for i := range 9 {
		if err := l.Send(Bulk, frame(Bulk, i, 10)); err != nil {
			t.Fatal(err)
		}
	}
	_ = l.Send(Control, frame(Control, 0, 10))
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []Class{BestEffort, Control, Bulk, Bulk, Bulk, Bulk, Bulk, Bulk, Bulk, Bulk, Bulk}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sent %v, want %v", got, want)
	}
	if fmt.Sprint(sizes) != "[4 4 2]" {
		t.Fatalf("batches of %v, want [4 4 2]", sizes)
	}
	if s := l.Stats(); s.Len != 0 || s.Direct != 1 || s.Queued != 10 || s.SendErrors != 1 {
		t.Fatalf("after drain: %+v", s)
	}
}
