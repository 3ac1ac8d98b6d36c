package pac

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/dop251/goja"
)

// maxCallStack bounds recursion in a script (goja counts frames).
const maxCallStack = 1000

// vm is one JavaScript runtime with the PAC functions installed and the
// script's top-level code run. It serves one call at a time; Script pools
// them.
type vm struct {
	s  *Script
	rt *goja.Runtime
	fn goja.Callable // FindProxyForURLEx if defined, else FindProxyForURL

	// Per call: the caller's context and the distinct DNS questions asked.
	ctx   context.Context
	asked []dnsKey
	args  [2]goja.Value // the entry point's arguments, kept to spare an allocation

	// The watchdog: timer fires after the time limit, or the caller's
	// context ends, and fire interrupts the runtime and wakes DNS waits.
	// The timer is reused from call to call, so an evaluation allocates
	// nothing for it. armed says whether a call is running, so that a late
	// firing cannot leave an interrupt pending for the next call.
	timer   *time.Timer
	mu      sync.Mutex
	armed   bool
	fired   bool
	expired chan struct{} // made on demand by DNS waits; closed by fire
}

// errInterrupted is what the watchdog interrupts the runtime with.
var errInterrupted = errors.New("pac: evaluation interrupted")

func (s *Script) newVM(ctx context.Context) (*vm, error) {
	v := &vm{s: s, rt: goja.New()}
	v.timer = time.AfterFunc(time.Hour, v.fire)
	v.timer.Stop()
	v.rt.SetTimeSource(s.opts.Now)
	v.rt.SetMaxCallStackSize(maxCallStack)
	v.install()
	stop := v.arm(ctx)
	_, err := v.rt.RunProgram(s.prg)
	if err = v.disarm(ctx, stop, err); err != nil {
		return nil, s.scriptError(err, "while loading the script")
	}
	for _, name := range []string{entryPointEx, entryPoint} {
		if fn, ok := goja.AssertFunction(v.rt.Get(name)); ok {
			v.fn = fn
			return v, nil
		}
	}
	return nil, fmt.Errorf("pac: %s defines no function FindProxyForURL(url, host)", s.opts.Name)
}

func (v *vm) fire() {
	v.mu.Lock()
	if v.armed && !v.fired {
		v.fired = true
		v.rt.Interrupt(errInterrupted)
		if v.expired != nil {
			close(v.expired)
		}
	}
	v.mu.Unlock()
}

// expiredChan is closed when the current call runs out of time or its
// context ends.
func (v *vm) expiredChan() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.expired == nil {
		v.expired = make(chan struct{})
		if v.fired {
			close(v.expired)
		}
	}
	return v.expired
}

// arm starts the watchdog for a call under ctx; disarm stops it and turns
// an interruption into the error that says why. (A pair rather than a
// function taking a closure: the closure would cost an allocation per call.)
func (v *vm) arm(ctx context.Context) (stop func() bool) {
	v.ctx, v.asked = ctx, v.asked[:0]
	v.mu.Lock()
	v.armed, v.fired, v.expired = true, false, nil
	v.mu.Unlock()
	v.timer.Reset(v.s.opts.Timeout)
	if ctx.Done() != nil {
		return context.AfterFunc(ctx, v.fire)
	}
	return nil
}

func (v *vm) disarm(ctx context.Context, stop func() bool, err error) error {
	v.timer.Stop()
	if stop != nil {
		stop()
	}
	v.mu.Lock()
	fired := v.fired
	v.armed = false
	v.mu.Unlock()
	v.rt.ClearInterrupt()
	v.ctx = nil
	if err != nil && fired {
		if ctx.Err() != nil {
			return fmt.Errorf("pac: evaluation stopped: %w", ctx.Err())
		}
		return fmt.Errorf("pac: %s did not finish within %v (an endless loop, or DNS too slow?): %w",
			v.s.opts.Name, v.s.opts.Timeout, ErrTimeout)
	}
	return err
}

// call runs the entry point.
func (v *vm) call(ctx context.Context, url, host string) (string, error) {
	stop := v.arm(ctx)
	v.args[0], v.args[1] = v.rt.ToValue(url), v.rt.ToValue(host)
	res, err := v.fn(goja.Undefined(), v.args[:]...)
	v.args = [2]goja.Value{}
	if err = v.disarm(ctx, stop, err); err != nil {
		return "", v.s.scriptError(err, "")
	}
	if !goja.IsString(res) {
		return "", fmt.Errorf("pac: %s: FindProxyForURL returned %s, not a string; it must return a string such as \"DIRECT\" or \"PROXY host:port\"", v.s.opts.Name, describe(res))
	}
	raw := res.String()
	if !isASCII(raw) {
		return "", fmt.Errorf("pac: %s: FindProxyForURL returned a non-ASCII string %q; proxy names must be ASCII (punycode for international names)", v.s.opts.Name, raw)
	}
	return raw, nil
}

// describe names a JavaScript value's type for error messages.
func describe(v goja.Value) string {
	switch {
	case v == nil || goja.IsUndefined(v):
		return "undefined (no return statement reached?)"
	case goja.IsNull(v):
		return "null"
	}
	switch {
	case goja.IsNumber(v):
		return "a number (" + v.String() + ")"
	case v.ExportType().Kind() == reflect.Bool:
		return "a boolean (" + v.String() + ")"
	}
	return "an object"
}

// ScriptError is an exception thrown by a PAC script, with where.
type ScriptError struct {
	Script   string // the script's name
	Line     int    // 1-based; 0 when unknown
	Column   int
	Function string // the function that threw, when known
	Msg      string // the exception, as JavaScript prints it
	Source   string // the line that threw
}

func (e *ScriptError) Error() string {
	var b strings.Builder
	b.WriteString("pac: ")
	b.WriteString(e.Script)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Function != "" {
		b.WriteString(" (in ")
		b.WriteString(e.Function)
		b.WriteString(")")
	}
	return b.String()
}

// scriptError turns a goja error into a *ScriptError that says where.
func (s *Script) scriptError(err error, when string) error {
	var msg string
	var stack []goja.StackFrame
	var so *goja.StackOverflowError
	var ex *goja.Exception
	switch {
	case errors.As(err, &so):
		msg, stack = "RangeError: Maximum call stack size exceeded", so.Stack()
	case errors.As(err, &ex):
		msg, stack = ex.Value().String(), ex.Stack()
	default:
		return err
	}
	if when != "" {
		msg += " " + when
	}
	e := &ScriptError{Script: s.opts.Name, Msg: msg}
	for _, f := range stack {
		pos := f.Position()
		if pos.Line == 0 || pos.Filename != s.opts.Name {
			continue
		}
		e.Line, e.Column, e.Function = pos.Line, pos.Column, f.FuncName()
		lines := strings.SplitN(s.src, "\n", e.Line+1)
		if len(lines) >= e.Line {
			e.Source = strings.TrimRight(lines[e.Line-1], "\r")
		}
		break
	}
	return e
}
