#include "suffix_tree.h"
