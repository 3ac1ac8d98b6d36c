package pac

import (
	"reflect"
	"sort"
	"strings"

	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/token"
)

// cachePolicy says whether, and by what key, results of a script may be
// cached. It is decided once per script by reading its syntax tree; see the
// package documentation for the rules.
type cachePolicy struct {
	cacheable  bool
	reason     string // why results are not cached; "" when they are
	byURL      bool   // the entry point reads its url argument: the key holds the URL
	localAddrs bool   // the script calls myIpAddress or myIpAddressEx
}

// Names whose presence anywhere in a script makes its result depend on
// something other than its arguments.
var (
	timeNames    = []string{"Date", "dateRange", "timeRange", "weekdayRange"}
	dynamicNames = []string{"eval", "Function", "globalThis", "constructor", "random", "Reflect"}
	addrNames    = []string{"myIpAddress", "myIpAddressEx"}
	entryPoints  = []string{entryPointEx, entryPoint}
)

func analyze(prg *ast.Program) cachePolicy {
	idents := map[string]bool{}
	usesThis := false
	inspect(prg, func(n any) bool {
		switch n := n.(type) {
		case *ast.Identifier:
			idents[n.Name.String()] = true
		case ast.Identifier:
			idents[n.Name.String()] = true
		case *ast.ThisExpression:
			usesThis = true
		}
		return true
	})
	p := cachePolicy{cacheable: true}
	for _, name := range addrNames {
		p.localAddrs = p.localAddrs || idents[name]
	}
	for _, name := range timeNames {
		if idents[name] {
			return cachePolicy{reason: "uses " + name + ": results depend on the time"}
		}
	}
	for _, name := range dynamicNames {
		if idents[name] {
			return cachePolicy{reason: "uses " + name + ": results may depend on more than url and host"}
		}
	}
	if usesThis {
		return cachePolicy{reason: "uses this: results may depend on more than url and host"}
	}
	if w := globalWrites(prg); len(w) > 0 {
		return cachePolicy{reason: "assigns global " + strings.Join(w, ", ") + " inside a function: results may depend on earlier calls"}
	}
	p.byURL = readsURL(prg)
	return p
}

// readsURL reports whether an entry point can read its first argument: it
// names it in its body, uses `arguments`, or is not a function literal we can
// see.
func readsURL(prg *ast.Program) bool {
	found, reads := false, false
	check := func(name string, fn *ast.FunctionLiteral) {
		if !isEntryPoint(name) {
			return
		}
		found = true
		if fn == nil || fn.ParameterList == nil || fn.ParameterList.Rest != nil {
			reads = true
			return
		}
		if len(fn.ParameterList.List) == 0 {
			reads = reads || mentions(fn.Body, "arguments")
			return
		}
		id, ok := fn.ParameterList.List[0].Target.(*ast.Identifier)
		if !ok {
			reads = true
			return
		}
		reads = reads || mentions(fn.Body, id.Name.String()) || mentions(fn.Body, "arguments")
	}
	inspect(prg, func(n any) bool {
		switch n := n.(type) {
		case *ast.FunctionDeclaration:
			if n.Function.Name != nil {
				check(n.Function.Name.Name.String(), n.Function)
			}
		case *ast.Binding:
			if id, ok := n.Target.(*ast.Identifier); ok {
				fn, _ := n.Initializer.(*ast.FunctionLiteral)
				if n.Initializer != nil {
					check(id.Name.String(), fn)
				}
			}
		case *ast.AssignExpression:
			if id, ok := n.Left.(*ast.Identifier); ok {
				fn, _ := n.Right.(*ast.FunctionLiteral)
				check(id.Name.String(), fn)
			}
		}
		return true
	})
	return reads || !found
}

func isEntryPoint(name string) bool {
	for _, e := range entryPoints {
		if name == e {
			return true
		}
	}
	return false
}

func mentions(n ast.Node, name string) bool {
	found := false
	inspect(n, func(n any) bool {
		switch id := n.(type) {
		case *ast.Identifier:
			found = found || id.Name.String() == name
		case ast.Identifier:
			found = found || id.Name.String() == name
		}
		return !found
	})
	return found
}

// globalWrites lists the names that code inside a function assigns without
// declaring them in that function or an enclosing one: global variables,
// declared at the top or implicit. A script that writes globals from its
// functions can carry state from one call to the next.
func globalWrites(prg *ast.Program) []string {
	written := map[string]bool{}
	var walk func(n any, scopes []map[string]bool)
	walk = func(root any, scopes []map[string]bool) {
		inspect(root, func(n any) bool {
			if n == root {
				return true
			}
			switch n := n.(type) {
			case *ast.FunctionLiteral:
				walk(n.Body, append(scopes, functionLocals(n.ParameterList, n.Body)))
				return false
			case *ast.ArrowFunctionLiteral:
				walk(n.Body, append(scopes, functionLocals(n.ParameterList, n.Body)))
				return false
			case *ast.AssignExpression:
				noteWrite(n.Left, scopes, written)
			case *ast.UnaryExpression:
				if n.Operator == token.INCREMENT || n.Operator == token.DECREMENT {
					noteWrite(n.Operand, scopes, written)
				}
			case *ast.ForIntoExpression:
				noteWrite(n.Expression, scopes, written)
			}
			return true
		})
	}
	walk(prg, nil)
	names := make([]string, 0, len(written))
	for name := range written {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func noteWrite(target ast.Expression, scopes []map[string]bool, written map[string]bool) {
	if len(scopes) == 0 {
		return // top-level code runs once per runtime, before any call
	}
	id, ok := target.(*ast.Identifier)
	if !ok {
		return // a property: objects the script builds itself; a global object needs a global name first
	}
	name := id.Name.String()
	for _, s := range scopes {
		if s[name] {
			return
		}
	}
	written[name] = true
}

// functionLocals collects the names a function declares: parameters, var,
// let and const bindings, catch parameters and nested function names.
func functionLocals(params *ast.ParameterList, body ast.Node) map[string]bool {
	locals := map[string]bool{"arguments": true}
	add := func(t any) {
		inspect(t, func(n any) bool {
			if id, ok := n.(*ast.Identifier); ok {
				locals[id.Name.String()] = true
			}
			return true
		})
	}
	if params != nil {
		for _, b := range params.List {
			add(b.Target)
		}
		if params.Rest != nil {
			add(params.Rest)
		}
	}
	inspect(body, func(n any) bool {
		switch n := n.(type) {
		case *ast.FunctionLiteral:
			if n.Name != nil {
				locals[n.Name.Name.String()] = true
			}
			return false
		case *ast.ArrowFunctionLiteral:
			return false
		case *ast.Binding:
			add(n.Target)
		case *ast.ForDeclaration:
			add(n.Target)
		case *ast.CatchStatement:
			if n.Parameter != nil {
				add(n.Parameter)
			}
		}
		return true
	})
	return locals
}

// inspect calls f for every syntax-tree node under root, depth first, and
// descends into a node's children when f returns true. goja's ast package
// has no walker of its own; reflection keeps this one complete for every
// node type.
func inspect(root any, f func(n any) bool) {
	var visit func(v reflect.Value)
	visit = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Interface, reflect.Pointer:
			if v.IsNil() {
				return
			}
			if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct && isASTType(v.Elem().Type()) {
				if !f(v.Interface()) {
					return
				}
				visitFields(v.Elem(), visit)
				return
			}
			visit(v.Elem())
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				visit(v.Index(i))
			}
		case reflect.Struct:
			if !isASTType(v.Type()) {
				return
			}
			if v.CanInterface() && !f(v.Interface()) {
				return
			}
			visitFields(v, visit)
		}
	}
	visit(reflect.ValueOf(root))
}

var astPkgPath = reflect.TypeOf(ast.Program{}).PkgPath()

func isASTType(t reflect.Type) bool { return t.PkgPath() == astPkgPath }

func visitFields(v reflect.Value, visit func(reflect.Value)) {
	for i := 0; i < v.NumField(); i++ {
		if v.Type().Field(i).IsExported() {
			visit(v.Field(i))
		}
	}
}
