package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestNewDB: each database is new and empty, and reachable by its DSN.
func TestNewDB(t *testing.T) {
	ctx := context.Background()
	a, b := NewDB(t), NewDB(t)
	if a == b {
		t.Fatalf("two NewDB calls gave the same DSN %q", a)
	}
	conn, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var fsync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil || fsync != "on" {
		t.Errorf("fsync = %q, %v; want on", fsync, err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE x (v int)"); err != nil {
		t.Fatal(err)
	}
}

// TestStopRestartTerminate: committed data survives an immediate stop and
// restart; Terminate ends the sessions of one application name only.
func TestStopRestartTerminate(t *testing.T) {
	ctx := context.Background()
	c := New(t)
	dsn, err := c.CreateDB(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE x (v int); INSERT INTO x VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := c.StopImmediate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, dsn); err == nil {
		t.Fatal("connected to a stopped server")
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	victim, err := pgx.Connect(ctx, dsn+" application_name=victim")
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close(ctx)
	other, err := pgx.Connect(ctx, dsn+" application_name=other")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	var v int
	if err := victim.QueryRow(ctx, "SELECT v FROM x").Scan(&v); err != nil || v != 42 {
		t.Fatalf("after an immediate stop and restart: %d, %v", v, err)
	}
	if n, err := c.Terminate(ctx, "victim"); err != nil || n != 1 {
		t.Fatalf("Terminate = %d, %v; want 1", n, err)
	}
	if err := victim.QueryRow(ctx, "SELECT 1").Scan(&v); err == nil {
		t.Error("a terminated session still answers")
	}
	if err := other.QueryRow(ctx, "SELECT 1").Scan(&v); err != nil {
		t.Errorf("another application's session was ended: %v", err)
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
}
