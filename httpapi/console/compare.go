package console

import (
	"context"
	"net/http"
)

// compare is the cross-cluster page (spec C8): every cluster side by side.
func (c *console) compare(ctx context.Context, _ *http.Request, v *view) error {
	cs, err := c.o.Authority.CompareClusters(ctx)
	if err != nil {
		return err
	}
	v.Title = "Compare clusters"
	v.Data["clusters"] = maps(cs)
	v.Data["fence_epoch"] = c.o.Authority.FenceEpoch()
	return nil
}
