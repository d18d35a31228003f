module github.com/geosearch/search/tools/rooms

go 1.26.7
