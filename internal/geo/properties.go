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

// MaxSelectedProperties is the most property keys one request may select.
const MaxSelectedProperties = MaxCollectionProperties

// ValidatePropertySelection returns an Invalid error unless keys are at
// most MaxSelectedProperties property keys, none empty. param names the
// selection in the caller's protocol for error messages.
func ValidatePropertySelection(keys []string, param string) error {
	if len(keys) > MaxSelectedProperties {
		return Errorf(Invalid, "%s may name at most %d properties, got %d", param, MaxSelectedProperties, len(keys))
	}
	for i, k := range keys {
		if k == "" {
			return Errorf(Invalid, "%s: key %d is empty", param, i)
		}
		if err := validateText(param+" key", k, MaxPropertyKeyLength); err != nil {
			return err
		}
	}
	return nil
}

// SelectProperties returns the properties of props whose keys are among
// keys (property selection: both edges select the same way); nil when none
// is left.
func SelectProperties(props map[string]any, keys []string) map[string]any {
	var out map[string]any
	for _, k := range keys {
		if v, ok := props[k]; ok {
			if out == nil {
				out = make(map[string]any, len(keys))
			}
			out[k] = v
		}
	}
	return out
}
