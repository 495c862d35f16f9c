package e2e

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/rap-fabric/core/mesh/qos"
)

// The QoS class a flow is dialled with is in every frame of the flow, both
// ways, through a relay that keeps it; a relay that rewrites it on a data
// frame breaks authentication.
func TestClassTravelsEndToEndThroughRelay(t *testing.T) {
	l := newLinks(t, map[string]staticRoutes{"s": {"d": "r"}, "r": {"s": "s", "d": "d"}, "d": {"s": "r"}}, nil)
	seen := map[[2]string][]qos.Class{}
	l.intercept = func(from, to string, fr []byte) []byte {
		h, _, err := ParseHeader(fr)
		if err != nil {
			t.Fatalf("%s→%s: %v", from, to, err)
		}
		if ClassOf(fr) != h.Class {
			t.Fatalf("ClassOf %v, header %v", ClassOf(fr), h.Class)
		}
		seen[[2]string{from, to}] = append(seen[[2]string{from, to}], h.Class)
		return fr
	}
	c, err := l.f["s"].DialServiceClass("d", EchoService, qos.Interactive)
	if err != nil {
		t.Fatal(err)
	}
	if c.Class() != qos.Interactive {
		t.Fatalf("conn class %v", c.Class())
	}
	if err := c.Send([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	l.pump()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if got, err := c.Recv(ctx); err != nil || !bytes.Equal(got, []byte("hello")) {
		t.Fatalf("echo: %q %v", got, err)
	}
	for _, hop := range [][2]string{{"s", "r"}, {"r", "d"}, {"d", "r"}, {"r", "s"}} {
		cls := seen[hop]
		if len(cls) < 2 {
			t.Fatalf("hop %v saw %d frames", hop, len(cls))
		}
		for _, x := range cls {
			if x != qos.Interactive {
				t.Fatalf("hop %v carried class %v", hop, x)
			}
		}
	}
	// A relay that lowers the class of a data frame: the destination refuses it.
	l.intercept = func(from, to string, fr []byte) []byte {
		if from == "r" && to == "d" {
			fr[3] = fr[3]&^FlagClassMask | classFlags(qos.BestEffort)
		}
		return fr
	}
	before := l.f["d"].Stats().DroppedAuth
	_ = c.Send([]byte("rewritten"))
	l.pump()
	if got := l.f["d"].Stats().DroppedAuth; got != before+1 {
		t.Fatalf("rewritten class: auth drops %d → %d", before, got)
	}
}

// A flow dialled without a class (as nodes before classes do) carries none
// (read as qos.Default) and its answers carry none either.
func TestNoClassIsDefaultAndBackwardCompatible(t *testing.T) {
	l := newLinks(t, map[string]staticRoutes{"s": {"d": "d"}, "d": {"s": "s"}}, nil)
	var flags []byte
	l.intercept = func(from, to string, fr []byte) []byte { flags = append(flags, fr[3]); return fr }
	c, err := l.f["s"].DialService("d", EchoService)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Send([]byte("x"))
	l.pump()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Recv(ctx); err != nil {
		t.Fatal(err)
	}
	if len(flags) < 4 {
		t.Fatalf("%d frames", len(flags))
	}
	for _, fl := range flags {
		if fl&FlagClassMask != 0 {
			t.Fatalf("flags %#x carry a class", fl)
		}
		if classOfFlags(fl) != qos.Default {
			t.Fatalf("no class read as %v", classOfFlags(fl))
		}
	}
	if ClassOf(nil) != qos.Default || ClassOf([]byte{'R', 1, 2, 0x30, 0, 0, 0, 0, 0}) != qos.Default {
		t.Fatal("ClassOf of a non-frame is not Default")
	}
	// Unknown class values (6, 7) read as Default.
	if classOfFlags(0x70) != qos.Default || classOfFlags(0x60) != qos.Default {
		t.Fatal("unknown class values are not Default")
	}
	for c := range qos.Class(qos.NumClasses) {
		if classOfFlags(classFlags(c)|FlagFromInitiator|FlagRecordRoute) != c {
			t.Fatalf("class %v does not round-trip", c)
		}
	}
}
