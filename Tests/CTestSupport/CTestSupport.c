// SwiftPM needs one source file in a C target; everything lives in include/CTestSupport.h.
#include "CTestSupport.h"
