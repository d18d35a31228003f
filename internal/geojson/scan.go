// Package geojson reads GeoJSON FeatureCollections feature by feature, for
// the import path of the CLI, the server's tests and the benchmark.
package geojson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/geosearch/search/internal/geo"
)

// ScanOptions say where a feature's name and key come from.
type ScanOptions struct {
	// NameProperty is the property holding the name ("name" if empty).
	NameProperty string
	// KeyProperty is the property holding the key; if empty, the feature's
	// GeoJSON "id" member is the key, and features without one have none.
	KeyProperty string
}

// Scan reads a GeoJSON FeatureCollection (or a single
// Feature) from r one feature at a time, without holding the whole document,
// and calls fn with each in order. Geometry is passed on as raw JSON for
// geo.DecodeFeature. It fails on input that is not GeoJSON; a feature whose
// geometry is wrong is fn's to judge.
func Scan(r io.Reader, opts ScanOptions, fn func(geo.RawFeature) error) error {
	if opts.NameProperty == "" {
		opts.NameProperty = "name"
	}
	dec := json.NewDecoder(r)
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("not a GeoJSON document: %w", err)
	}
	if tok != json.Delim('{') {
		return errors.New("not a GeoJSON document: it does not start with an object")
	}
	index := 0
	sawType := ""
	var single rawFeatureJSON
	for dec.More() {
		keyTok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("not a GeoJSON document: %w", err)
		}
		key, _ := keyTok.(string)
		switch key {
		case "type":
			if err := dec.Decode(&sawType); err != nil {
				return fmt.Errorf("not a GeoJSON document: type: %w", err)
			}
			if sawType != "FeatureCollection" && sawType != "Feature" {
				return fmt.Errorf("GeoJSON type %q is not supported; want FeatureCollection or Feature", sawType)
			}
		case "features":
			if t, err := dec.Token(); err != nil || t != json.Delim('[') {
				return errors.New("not a GeoJSON FeatureCollection: features is not an array")
			}
			for dec.More() {
				var v json.RawMessage
				if err := dec.Decode(&v); err != nil {
					return fmt.Errorf("feature %d: not valid JSON: %w", index, err)
				}
				if err := fn(featureFromJSON(v, index, opts)); err != nil {
					return err
				}
				index++
			}
			if _, err := dec.Token(); err != nil {
				return fmt.Errorf("not a GeoJSON document: %w", err)
			}
		case "geometry", "properties", "id":
			// Members of a single Feature, whose order JSON does not fix.
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return fmt.Errorf("not a GeoJSON document: %w", err)
			}
			single.set(key, v)
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return fmt.Errorf("not a GeoJSON document: %w", err)
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("not a GeoJSON document: %w", err)
	}
	switch sawType {
	case "Feature":
		return fn(single.raw(0, opts))
	case "FeatureCollection":
		return nil
	default:
		return errors.New("not a GeoJSON document: no type member")
	}
}

// featureFromJSON reads one member of a FeatureCollection's features. A
// member that is valid JSON but not a Feature object, or whose properties
// are not an object, comes back with a Problem: that feature is rejected,
// the others go on.
func featureFromJSON(v json.RawMessage, index int, opts ScanOptions) geo.RawFeature {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(v, &members); err != nil || members == nil {
		return geo.RawFeature{Index: index, Problem: "not a GeoJSON Feature: want a JSON object"}
	}
	var f rawFeatureJSON
	for _, m := range []string{"id", "geometry", "properties"} {
		if mv, ok := members[m]; ok {
			f.set(m, mv)
		}
	}
	return f.raw(index, opts)
}

type rawFeatureJSON struct {
	ID         json.RawMessage
	Properties map[string]any
	Geometry   json.RawMessage
	problem    string
}

func (f *rawFeatureJSON) set(member string, v json.RawMessage) {
	switch member {
	case "id":
		f.ID = v
	case "geometry":
		f.Geometry = v
	case "properties":
		d := json.NewDecoder(bytes.NewReader(v))
		d.UseNumber()
		var props any
		if err := d.Decode(&props); err != nil {
			f.problem = "properties are not valid JSON"
			return
		}
		switch p := props.(type) {
		case map[string]any:
			f.Properties = p
		case nil: // "properties": null is a feature without properties
		default:
			f.problem = fmt.Sprintf("properties must be a JSON object or null, got %s", Kind(p))
		}
	}
}

// Kind names the JSON type of a decoded value or of the token that starts
// one (encoding/json's Token), for messages: never a Go type.
func Kind(v any) string {
	switch v := v.(type) {
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		return "an object"
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	default:
		return "a value"
	}
}

func (f rawFeatureJSON) raw(index int, opts ScanOptions) geo.RawFeature {
	if f.problem != "" {
		return geo.RawFeature{Index: index, Problem: f.problem}
	}
	// Name and key first, while numbers are still exact json.Numbers.
	rf := geo.RawFeature{Index: index, GeometryJSON: f.Geometry}
	rf.Name = scalarString(f.Properties[opts.NameProperty])
	if opts.KeyProperty != "" {
		rf.Key = scalarString(f.Properties[opts.KeyProperty])
	} else if len(f.ID) > 0 {
		var id any
		d := json.NewDecoder(bytes.NewReader(f.ID))
		d.UseNumber()
		if d.Decode(&id) == nil {
			rf.Key = scalarString(id)
		}
	}
	rf.Properties = normalizeNumbers(f.Properties)
	return rf
}

// scalarString renders a JSON string or number as text; anything else is "".
func scalarString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return ""
	}
}

// normalizeNumbers turns json.Number values (kept exact while reading keys)
// into float64, the number type of JSON properties elsewhere.
func normalizeNumbers(m map[string]any) map[string]any {
	for k, v := range m {
		m[k] = normalizeValue(v)
	}
	return m
}

func normalizeValue(v any) any {
	switch v := v.(type) {
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return v.String()
		}
		return f
	case map[string]any:
		return normalizeNumbers(v)
	case []any:
		for i := range v {
			v[i] = normalizeValue(v[i])
		}
		return v
	default:
		return v
	}
}
