//go:build tools

// Package tools pins the Pulumi engine packages that scripts/engine builds.
package tools

import (
	_ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
)
