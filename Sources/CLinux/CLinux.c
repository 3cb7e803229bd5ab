// SwiftPM needs one source file in a C target; everything lives in include/CLinux.h.
#include "CLinux.h"
