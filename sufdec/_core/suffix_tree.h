#pragma once
namespace sufdec {
struct Dummy { int x = 0; };
}
