package store_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/store"
)

// TestUUIDLookupsUseIndexes: an id given as text matches exactly the rows
// "col::text = $1" matched (only PostgreSQL's own text form of a uuid;
// uppercase, braced or garbage match nothing and are no error), and the
// lookup is one the planner answers from the primary key index, which the
// text comparison could not use (migration 019).
func TestUUIDLookupsUseIndexes(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	claim(t, db, 1)
	f := seed(t, db, 1)

	m, err := store.GetMembership(ctx, db.Pool, f.cluster.ID, f.node.ID)
	require.NoError(t, err)
	require.Equal(t, f.node.ID, m.NodeID)
	for _, bad := range []string{strings.ToUpper(f.node.ID), "{" + f.node.ID + "}", strings.ReplaceAll(f.node.ID, "-", ""), "", "x", "' OR 1=1 --"} {
		_, err := store.GetMembership(ctx, db.Pool, f.cluster.ID, bad)
		require.ErrorIs(t, err, store.ErrNotFound, "node id %q", bad)
	}
	ms, err := store.ListMembershipsOfNodes(ctx, db.Pool, []string{"nonsense", strings.ToUpper(f.node.ID), f.node.ID})
	require.NoError(t, err)
	require.Len(t, ms, 1)
	require.Len(t, ms[f.node.ID], 1)

	var gen, bad1, upper, good string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT coalesce(rap_uuid($1)::text, 'null'), coalesce(rap_uuid('x')::text, 'null'),
		coalesce(rap_uuid($2)::text, 'null'), array_to_string(rap_uuids(ARRAY[$1, 'x', $2]), ',')`, f.node.ID, strings.ToUpper(f.node.ID)).
		Scan(&gen, &bad1, &upper, &good))
	require.Equal(t, []string{f.node.ID, "null", "null", f.node.ID}, []string{gen, bad1, upper, good})

	// With sequential scans priced out, both plans touch the index, but only
	// the new form searches it (an Index Cond); the text comparison reads all
	// of it and filters every row.
	plan := func(sql string) string {
		var lines []string
		require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `EXPLAIN `+sql, f.cluster.ID, f.node.ID)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var l string
				if err := rows.Scan(&l); err != nil {
					return err
				}
				lines = append(lines, l)
			}
			return rows.Err()
		}))
		return strings.Join(lines, "\n")
	}
	require.NotContains(t, plan(`SELECT 1 FROM cluster_memberships WHERE cluster_id::text = $1 AND node_id::text = $2`), "Index Cond")
	p := plan(`SELECT 1 FROM cluster_memberships WHERE cluster_id = rap_uuid($1) AND node_id = rap_uuid($2)`)
	require.Contains(t, p, "Index Cond: ((cluster_id = ")
	require.Contains(t, p, "cluster_memberships_pkey")
}

// TestNoTextComparedIDs keeps the text comparison of uuid columns out of the
// queries of this package and of authority: "col::text = $n" (or = ANY)
// reads the whole table; "col = rap_uuid($n)" matches the same rows through
// the index.
func TestNoTextComparedIDs(t *testing.T) {
	re := regexp.MustCompile(`[a-z_]+::text = (ANY\()?\$[0-9]`)
	for _, dir := range []string{".", "../authority"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		require.NotEmpty(t, files)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			for i, line := range strings.Split(string(b), "\n") {
				if m := re.FindString(line); m != "" && !strings.HasPrefix(strings.TrimSpace(line), "//") {
					t.Errorf("%s:%d: %q compares a uuid column as text; use col = rap_uuid($n)", f, i+1, m)
				}
			}
		}
	}
}
