// SPDX-License-Identifier: MIT
// The optim layer: Adam with bias correction and ramp schedules (standard library only).
#pragma once

#include "ternq/optim/adam.hpp"
#include "ternq/optim/schedule.hpp"
