package app

import (
	"fmt"
	"path/filepath"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/lake"
	"github.com/bytebasket/bytebasket/internal/lake/hdfs"
	"github.com/bytebasket/bytebasket/internal/lake/local"
)

var (
	_ lake.Backend = (*hdfs.FS)(nil)
	_ lake.Backend = (*local.Dir)(nil)
)

// localLakeRoot is the local lake's directory: lake.root, relative to the data directory
// unless absolute.
func localLakeRoot(cfg config.Config) string {
	if filepath.IsAbs(cfg.Lake.Root) {
		return cfg.Lake.Root
	}
	return filepath.Join(cfg.DataDir, cfg.Lake.Root)
}

// openLake is the lake factory: the backend named by lake.backend.
func openLake(cfg config.Config) (lake.Backend, error) {
	switch cfg.Lake.Backend {
	case "hdfs":
		return hdfs.Open(cfg.Lake)
	case "local":
		return local.Open(localLakeRoot(cfg))
	default:
		return nil, fmt.Errorf("lake backend %q is not one of local, hdfs", cfg.Lake.Backend)
	}
}
