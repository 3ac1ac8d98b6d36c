package gateway

import (
	"context"
	"net"
	"testing"
	"testing/synctest"
	"time"
)

// TestSilentClientIsClosed: a client that sends nothing after its CONNECT
// is accepted is disconnected; one that speaks is not.
func TestSilentClientIsClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newConnTracker()
		silentSide, silentPeer := net.Pipe()
		chattySide, chattyPeer := net.Pipe()
		defer silentPeer.Close()
		defer chattyPeer.Close()
		silent := &trackedConn{Conn: silentSide, t: tr}
		chatty := &trackedConn{Conn: chattySide, t: tr}
		tr.all[silent], tr.all[chatty] = struct{}{}, struct{}{}
		tr.expectTraffic(context.WithValue(context.Background(), connKey{}, silent), 30*time.Second)
		tr.expectTraffic(context.WithValue(context.Background(), connKey{}, chatty), 30*time.Second)
		go chattyPeer.Write([]byte("hello"))
		buf := make([]byte, 5)
		chatty.Read(buf)
		time.Sleep(31 * time.Second) // fake time in the bubble
		if tr.open() != 1 {
			t.Fatalf("%d connections open, want only the chatty one", tr.open())
		}
		if _, err := silentPeer.Write([]byte("x")); err == nil {
			t.Fatal("the silent connection is still open")
		}
	})
}
