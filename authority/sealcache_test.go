package authority

import (
	"bytes"
	"fmt"
	"testing"
)

// TestSealCacheBoundedByBytes: entries are found again; replacing a key does
// not count twice; past maxSealCacheBytes the cache starts over.
func TestSealCacheBoundedByBytes(t *testing.T) {
	var c sealCache
	v := bytes.Repeat([]byte{1}, 1<<20)
	c.put("a", v)
	c.put("a", v)
	if got, ok := c.get("a"); !ok || len(got) != len(v) {
		t.Fatal("entry not found")
	}
	if c.bytes != len(v)+1 {
		t.Fatalf("bytes %d after replacing a key", c.bytes)
	}
	for i := range 80 {
		c.put(fmt.Sprint("k", i), v)
		if c.bytes > maxSealCacheBytes {
			t.Fatalf("cache holds %d bytes, limit %d", c.bytes, maxSealCacheBytes)
		}
	}
	if _, ok := c.get("a"); ok {
		t.Fatal("the cache never started over")
	}
	if _, ok := c.get("k79"); !ok {
		t.Fatal("the newest entry is missing")
	}
}
