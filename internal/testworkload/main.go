// Command testworkload is the service workload the supervisor tests build
// and run: it serves GET /healthz, prints a line when it starts and when it
// ends, and can be told to exit, hang on SIGTERM or fail its check.
//
//	testworkload [-listen ADDR] [-control DIR] [-exit-after D] [-code N] [-ignore-term] [--version]
//
// With -control DIR it looks every 50 ms for DIR/unhealthy (the health
// endpoint answers 500 while it exists) and DIR/exit (exit at once with the
// code written in it).
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "", "health endpoint address")
	control := flag.String("control", "", "control directory")
	exitAfter := flag.Duration("exit-after", 0, "exit after this long")
	code := flag.Int("code", 0, "exit code for -exit-after")
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM")
	version := flag.Bool("version", false, "print the version")
	flag.Parse()
	if *version {
		fmt.Println("testworkload 9.9.9")
		return
	}
	fmt.Printf("testworkload started pid %d uid %d\n", os.Getpid(), os.Getuid())
	sig := make(chan os.Signal, 1)
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	}
	unhealthy := func() bool {
		if *control == "" {
			return false
		}
		_, err := os.Stat(filepath.Join(*control, "unhealthy"))
		return err == nil
	}
	if *listen != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
			if unhealthy() {
				http.Error(w, "unhealthy", http.StatusInternalServerError)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		go func() {
			if err := http.ListenAndServe(*listen, mux); err != nil {
				fmt.Println("listen:", err)
				os.Exit(3)
			}
		}()
	}
	var deadline <-chan time.Time
	if *exitAfter > 0 {
		deadline = time.After(*exitAfter)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	for {
		select {
		case s := <-sig:
			fmt.Println("testworkload got", s, "exiting")
			os.Exit(0)
		case <-deadline:
			fmt.Printf("testworkload exiting with code %d\n", *code)
			os.Exit(*code)
		case <-tick.C:
			if *control == "" {
				continue
			}
			if b, err := os.ReadFile(filepath.Join(*control, "exit")); err == nil {
				n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
				fmt.Printf("testworkload told to exit with code %d\n", n)
				os.Exit(n)
			}
		}
	}
}
