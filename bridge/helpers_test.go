package bridge

import "fmt"

func fmtAll(v any) string {
	return fmt.Sprintf("%v %+v %#v %s %q %x", v, v, v, v, v, v)
}
