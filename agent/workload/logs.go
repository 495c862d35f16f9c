package workload

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Output log files: a workload's stdout and stderr both go to OutputLog in
// its directory (one file keeps their order); when it grows past the
// supervisor's MaxLogBytes it is copied to OutputLog+".1" and truncated
// (copy-truncate: the workload keeps its descriptor, which is what lets it
// outlive the agent). Up to MaxLogFiles old files are kept.
const OutputLog = "output.log"

// rotate copies path to path.1 (shifting older ones) and truncates it when it
// is larger than max bytes. Lines written between the copy and the truncate
// are lost; that window is a few milliseconds.
func rotate(path string, max int64, keep int) error {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() <= max {
		return nil
	}
	for i := keep - 1; i >= 1; i-- {
		_ = os.Rename(path+"."+strconv.Itoa(i), path+"."+strconv.Itoa(i+1))
	}
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(path+".1", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	return os.Truncate(path, 0)
}

// TailLines returns the last n lines of the file at path (and, when it holds
// fewer, of its rotated predecessor path.1).
func TailLines(path string, n int) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	cur, err := lastLines(path, n)
	if err != nil {
		return nil, err
	}
	if len(cur) < n {
		prev, _ := lastLines(path+".1", n-len(cur))
		cur = append(prev, cur...)
	}
	return cur, nil
}

func lastLines(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// Read backwards in chunks until n newlines are seen.
	const chunk = 8 << 10
	size := fi.Size()
	var buf []byte
	for off := size; off > 0 && bytes.Count(buf, []byte{'\n'}) <= n; {
		step := min(int64(chunk), off)
		off -= step
		b := make([]byte, step)
		if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
			return nil, err
		}
		buf = append(b, buf...)
		if int64(len(buf)) > 4<<20 {
			break
		}
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil, nil
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

// Follow writes what is appended to path to w until ctx ends, starting at
// offset from; it notices truncation (rotation) and starts over at 0.
func Follow(ctx context.Context, path string, from int64, w io.Writer, poll time.Duration) error {
	off := from
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		f, err := os.Open(path)
		if err == nil {
			fi, _ := f.Stat()
			if fi != nil && fi.Size() < off {
				off = 0
			}
			if _, err := f.Seek(off, io.SeekStart); err == nil {
				r := bufio.NewReader(f)
				n, _ := io.Copy(w, r)
				off += n
			}
			f.Close()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// meta names an instance directory's service, so that `rap-node-agent logs`
// finds it by service id or type without the (locked) state file.
type meta struct {
	Cluster   string `json:"cluster"`
	ServiceID string `json:"service_id"`
	Type      string `json:"type"`
	Instance  string `json:"instance,omitempty"`
}

const metaFile = "service.json"

func writeMeta(inst *Instance) {
	b, _ := json.Marshal(meta{Cluster: inst.Cluster, ServiceID: inst.ServiceID, Type: inst.Type, Instance: inst.Instance})
	_ = os.WriteFile(filepath.Join(inst.Dir, metaFile), b, 0o644)
}

// FindLog returns the output log of the instance under root whose service id,
// type, instance name or "type/instance" is service, in cluster ("" for any). Several matches are an error
// naming them.
func FindLog(root, cluster, service string) (string, error) {
	dirs, _ := filepath.Glob(filepath.Join(root, "*", "*", metaFile))
	var found, names []string
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var m meta
		if json.Unmarshal(b, &m) != nil || (cluster != "" && m.Cluster != cluster) {
			continue
		}
		if m.ServiceID == service || m.Type == service || (m.Instance != "" && (m.Instance == service || m.Type+"/"+m.Instance == service)) {
			found = append(found, filepath.Join(filepath.Dir(p), OutputLog))
			names = append(names, m.Cluster+"/"+m.ServiceID)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no workload %q under %s", service, root)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%q names several workloads (%s); give the service id or --cluster", service, strings.Join(names, ", "))
}
