// Prepended by deploy/local/stack.sh to Debian's graphite-web 1.1.8
// dashboard.js, which calls htmlEncode without defining it, so that no
// saved dashboard loads (graphite-project/graphite-web#2711, fixed in 1.1.10,
// which the Docker stack's image has). ExtJS has the same function.
var htmlEncode = window.htmlEncode || Ext.util.Format.htmlEncode;
