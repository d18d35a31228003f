package postgistest

import (
	"context"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/postgis"
)

// ImportFill is a fill for Shared and NewDatabaseFrom: it decodes raws
// (geotest.Decode: in the fill, so only the test that fills pays for it),
// imports them through the store with opts, closes its connections and
// hands the result to check, when set, whose error fails the fill.
func ImportFill(opts geo.ImportOptions, raws []geo.RawFeature, check func(geo.ImportResult) error) func(url string) error {
	return func(url string) error {
		features, err := geotest.Decode(raws)
		if err != nil {
			return err
		}
		pool, err := postgis.Open(context.Background(), postgis.Config{URL: url, MaxWriteConns: 2}, "postgistest", postgis.NewStatementTimeout(0))
		if err != nil {
			return err
		}
		defer pool.Close()
		res, err := postgis.NewSearchService(pool).Import(context.Background(), opts, &geotest.Source{Features: features})
		if err == nil && check != nil {
			err = check(res)
		}
		return err
	}
}
