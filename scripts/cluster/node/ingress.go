package main

import (
	"context"
	"fmt"
)

func runIngress(ctx context.Context, args []string) error { return fmt.Errorf("not yet") }
