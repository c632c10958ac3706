/* walk.c — image discovery and content hashing (work in progress). */
#include "backend.h"
