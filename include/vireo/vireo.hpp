// Umbrella header: everything a caller needs.
#pragma once
#include "vireo/batch.hpp"
#include "vireo/device.hpp"
#include "vireo/error.hpp"
#include "vireo/gguf.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/log.hpp"
#include "vireo/metrics.hpp"
#include "vireo/model.hpp"
#include "vireo/sampler.hpp"
#include "vireo/scheduler.hpp"
#include "vireo/tokenizer.hpp"
#include "vireo/types.hpp"
