package geo

import "context"

// Property is a top-level property key that the things of a collection
// use, with the JSON types its values take among them.
type Property struct {
	Key string
	// Types are the JSON types of the key's values, sorted: some of
	// "array", "boolean", "null", "number", "object", "string".
	Types []string
}

// MaxCollectionProperties is the most property keys CollectionProperties
// returns for one collection.
const MaxCollectionProperties = 1000

// PropertyLister lists the properties a collection's things use. It is
// apart from SearchService because only the HTTP API needs it (to declare
// the queryable properties of OGC API – Features).
type PropertyLister interface {
	// CollectionProperties returns the top-level property keys of the
	// things of collection, by key, at most MaxCollectionProperties of
	// them (the first in byte order). A collection with no things, or none
	// at all, has none. It reads every thing of the collection: callers
	// cache the answer for as long as the collection's Updated time stays.
	// Returns Invalid for a bad collection name.
	CollectionProperties(ctx context.Context, collection string) ([]Property, error)
}
