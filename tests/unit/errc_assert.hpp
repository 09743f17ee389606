// EXPECT_ERRC(expr, want): expr throws kvactor::error carrying the errc `want`.
#pragma once

#include <gtest/gtest.h>

#include <exception>

#include "kvactor/error.hpp"

#define EXPECT_ERRC(expr, want)                                                           \
  do {                                                                                    \
    try {                                                                                 \
      (void)(expr);                                                                       \
      ADD_FAILURE() << #expr " did not throw";                                            \
    } catch (const ::kvactor::error& kvactor_error_) {                                    \
      EXPECT_EQ(kvactor_error_.code(), (want)) << #expr ": " << kvactor_error_.what();    \
    } catch (const std::exception& kvactor_other_) {                                      \
      ADD_FAILURE() << #expr " threw a non-kvactor exception: " << kvactor_other_.what(); \
    }                                                                                     \
  } while (0)
