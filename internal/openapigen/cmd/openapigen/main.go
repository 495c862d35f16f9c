// Command openapigen adds the request and response schemas derived from the
// Go types to docs/openapi.json and writes the served copy
// httpapi/openapi.json. scripts/openapi.py runs it after writing the routes;
// run it from the module root.
package main

import (
	"fmt"
	"os"

	"github.com/rap-fabric/core/internal/openapigen"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "openapigen:", err)
		os.Exit(1)
	}
}

func run() error {
	a, err := openapigen.Analyze(".")
	if err != nil {
		return err
	}
	doc, err := os.ReadFile("docs/openapi.json")
	if err != nil {
		return err
	}
	out, err := a.Enrich(doc)
	if err != nil {
		return err
	}
	if missing := a.Undocumented(out); len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "openapigen: %d operations without a response schema:\n", len(missing))
		for _, m := range missing {
			fmt.Fprintln(os.Stderr, "  ", m)
		}
	}
	for _, p := range []string{"docs/openapi.json", "httpapi/openapi.json"} {
		if err := os.WriteFile(p, out, 0o644); err != nil {
			return err
		}
	}
	return nil
}
