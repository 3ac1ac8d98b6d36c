package pactester

import (
	"os"
	"testing"
	"time"
	_ "time/tzdata"
)

// reloadLocal points time.Local at $TZ for one test, as a fresh process
// would, and restores it afterwards.
func reloadLocal(t *testing.T) {
	old := time.Local
	loc, err := time.LoadLocation(os.Getenv("TZ"))
	if err != nil {
		t.Fatal(err)
	}
	time.Local = loc
	t.Cleanup(func() { time.Local = old })
}
