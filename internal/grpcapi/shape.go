package grpcapi

import (
	"math"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
)

// thingDescriptor is the Thing message: a read_mask's paths are its field
// names, taken from the contract itself, so that a field added to Thing is
// selectable without a list here to update.
var thingDescriptor = (&searchv1.Thing{}).ProtoReflect().Descriptor()

// geometryField is the Thing field that holds the geometry.
const geometryField = "geometry_geojson"

// storeFields maps the Thing fields the store can leave unread to the
// domain's names for them; the others (id, name, geometry_geojson) are
// either always read or asked for separately.
var storeFields = map[protoreflect.Name]geo.Fields{
	"key":        geo.FieldKey,
	"collection": geo.FieldCollection,
	"properties": geo.FieldProperties,
	"bbox":       geo.FieldBBox,
}

// shape is what a request asks of each thing it returns: what the store
// reads (output, includeGeometry) and which fields of the answer are cleared
// (those the read_mask does not select).
type shape struct {
	includeGeometry bool
	output          geo.Output
	clear           []protoreflect.FieldDescriptor
	// cleared has bit n set for each field number n in clear: with
	// output.Omit, the key of a thing's encoding in this shape; unkeyed
	// when a field's number is too large for the key (fieldNumbers).
	cleared uint64
	unkeyed bool
	// properties, when not nil, are the property keys each thing keeps
	// (SearchRequest.properties).
	properties []string
}

// shapeOf validates a request's read_mask and geometry settings
// (AIP-157). With no mask, or an empty one, every field but the geometry is
// returned, as before masks existed; include_geometry adds the geometry to
// the mask or to that default. "*" selects every field. A path that is not
// one of Thing's fields is an Invalid error naming it.
func shapeOf(mask *fieldmaskpb.FieldMask, includeGeometry bool, tolerance float64, precision *int32) (shape, error) {
	sh := shape{includeGeometry: includeGeometry, output: geo.Output{SimplifyTolerance: tolerance}}
	if precision != nil {
		d := int(*precision)
		sh.output.CoordinateDigits = &d
	}
	if err := sh.output.Validate(); err != nil {
		return shape{}, err
	}
	paths := mask.GetPaths()
	if len(paths) == 0 {
		return sh, nil
	}
	fields := thingDescriptor.Fields()
	selected := make(map[protoreflect.Name]bool, len(paths))
	var unknown []string
	for _, p := range paths {
		switch {
		case p == "*":
			for i := range fields.Len() {
				selected[fields.Get(i).Name()] = true
			}
		case fields.ByName(protoreflect.Name(p)) != nil:
			selected[protoreflect.Name(p)] = true
		default:
			unknown = append(unknown, p)
		}
	}
	if len(unknown) > 0 {
		return shape{}, unknownPaths(unknown, fields)
	}
	if selected[geometryField] {
		sh.includeGeometry = true
	}
	for name, f := range storeFields {
		if !selected[name] {
			sh.output.Omit |= f
		}
	}
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !selected[fd.Name()] && (fd.Name() != geometryField || !sh.includeGeometry) {
			sh.clear = append(sh.clear, fd)
			if n := uint64(fd.Number()); n < fieldNumbers {
				sh.cleared |= 1 << n
			} else {
				sh.unkeyed = true
			}
		}
	}
	return sh, nil
}

// maxUnknownPaths bounds how many unknown paths an error message quotes.
const maxUnknownPaths = 10

func unknownPaths(unknown []string, fields protoreflect.FieldDescriptors) error {
	quoted := make([]string, 0, min(len(unknown), maxUnknownPaths))
	for _, p := range unknown[:min(len(unknown), maxUnknownPaths)] {
		if len(p) > 64 {
			p = p[:64] + "..."
		}
		quoted = append(quoted, strings.ToValidUTF8(`"`+p+`"`, "?"))
	}
	more := ""
	if len(unknown) > maxUnknownPaths {
		more = " and more"
	}
	names := make([]string, fields.Len())
	for i := range fields.Len() {
		names[i] = string(fields.Get(i).Name())
	}
	slices.Sort(names)
	return geo.Errorf(geo.Invalid, "read_mask names unknown fields of Thing: %s%s; the fields are %s, or * for all",
		strings.Join(quoted, ", "), more, strings.Join(names, ", "))
}

// apply clears the fields of t the mask did not select.
func (sh *shape) apply(t *searchv1.Thing) {
	if len(sh.clear) == 0 {
		return
	}
	m := t.ProtoReflect()
	for _, fd := range sh.clear {
		m.Clear(fd)
	}
}

// totalSize converts a count to SearchResponse.total_size (an int32, as
// AIP-158 has it), saturating.
func totalSize(n int64) int32 {
	return int32(min(n, math.MaxInt32))
}
