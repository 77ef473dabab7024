/* The librbd and librados calls vds uses, for bindgen (see generate.sh). */
#include <rados/librados.h>
#include <rbd/librbd.h>
