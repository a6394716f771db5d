// Scheduler: continuous and static batching over one Model and one KVCache (see
// include/vireo/scheduler.hpp for the policy).
//
// Bookkeeping: each live request is a Live record holding prompt + generated tokens, how
// many of them its KV sequence holds (`cached`), its own Sampler and its arrival order.
// Three queues, each kept sorted by arrival order: waiting (never admitted, or preempted by
// recompute: seq == -1), running (resident sequence), swapped (preempted by swap). The
// preemption victim is the running request that arrived last; resumption takes the oldest.
//
// A step plans (request, n tokens) pairs against two limits: the token budget and the
// blocks the pool can give (KVCache::available_blocks, which counts evictable cached blocks
// too). KVCache::blocks_needed(seq, n) is exact (copy on write included) and sequences do
// not share the blocks they append to, so summing it over the plan gives the step's need.
//
// Requests that end outside a step's sampling (cancel(), a passed deadline) are taken off
// their queue at once, their sequence removed, and their FinishedRequest parked in `ended`
// until the next step() hands it out; their id stays taken until then. Deadlines are
// scanned only when the clock has reached the earliest one known.
#include "vireo/scheduler.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <unordered_set>

#include "vireo/error.hpp"
#include "vireo/kv_cache.hpp"
#include "vireo/text_stream.hpp"
#include "vireo/tokenizer.hpp"

namespace vireo {

namespace {

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

struct Live {
  Request req;
  std::vector<Token> tokens;  // prompt then generated
  std::size_t n_prompt = 0;
  std::int64_t cached = 0;    // tokens[0..cached) are in the KV sequence
  SeqId seq = -1;
  Sampler sampler;
  std::uint64_t order = 0;    // arrival order (priority: lower is older)
  bool admitted_once = false;
  int preemptions = 0;
  std::int64_t cached_prompt = 0;
  Metrics::TimePoint arrival{}, first{};
  std::optional<TextStream> text;  // stream_text / stop_strings requests

  Live(Request r, std::uint64_t ord, Metrics::TimePoint t, const Tokenizer* tok)
      : req(std::move(r)), sampler(req.sampling), order(ord), arrival(t) {
    tokens = req.prompt;
    n_prompt = tokens.size();
    if (tok) text.emplace(*tok, req.stop_strings);
  }
  std::int64_t pending() const { return std::int64_t(tokens.size()) - cached; }
  int n_out() const { return int(tokens.size() - n_prompt); }
};

using LivePtr = std::unique_ptr<Live>;

// Insert keeping ascending arrival order.
template <class C>
void insert_sorted(C& c, LivePtr l) {
  auto it = std::upper_bound(c.begin(), c.end(), l->order,
                             [](std::uint64_t o, const LivePtr& x) { return o < x->order; });
  c.insert(it, std::move(l));
}

}  // namespace

struct Scheduler::Impl {
  const Model& model;
  KVCache& cache;
  SchedulerOptions opts;
  SchedulerStats stats;
  std::deque<LivePtr> waiting;
  std::vector<LivePtr> running;
  std::deque<LivePtr> swapped;
  std::unordered_set<std::uint64_t> ids;
  std::uint64_t next_order = 0;
  int static_batch = 0;  // size of the current static batch
  // Static padding: rows whose request finished (they decode pad tokens until the batch
  // ends) and throwaway sequences holding each row's prompt padding (seq, tokens left).
  struct Pad {
    SeqId seq;
    std::int64_t left;  // prompt padding still to feed; -1 for a finished row (one per step)
    Token token;
  };
  std::vector<Pad> pads;
  std::vector<Pad*> pad_plan;  // pads fed this step with their counts in pad_counts
  std::vector<std::int64_t> pad_counts;
  std::vector<FinishedRequest> ended;  // cancelled / expired, reported by the next step()
  Metrics::TimePoint earliest_deadline = Metrics::TimePoint::max();
  Batch batch;
  std::vector<Sampler*> samplers;  // per-step scratch for forward_sample
  std::vector<std::span<const Token>> histories;

  Impl(const Model& m, KVCache& c, SchedulerOptions o) : model(m), cache(c), opts(o) {}

  bool is_stop(const Live& l, Token t) const {
    if (l.req.stop_at_eog && model.has_tokenizer() && model.tokenizer().is_eog(t)) return true;
    return std::find(l.req.stop_tokens.begin(), l.req.stop_tokens.end(), t) != l.req.stop_tokens.end();
  }

  FinishedRequest finished_record(Live& l, FinishReason reason, Metrics::TimePoint now) {
    FinishedRequest f;
    f.id = l.req.id;
    f.prompt = std::move(l.req.prompt);
    f.output.assign(l.tokens.begin() + std::ptrdiff_t(l.n_prompt), l.tokens.end());
    if (l.text) f.text = l.text->released();
    f.reason = reason;
    f.preemptions = l.preemptions;
    f.cached_prompt_tokens = l.cached_prompt;
    f.arrival = l.arrival;
    f.first_token = l.first;
    f.finish = now;
    if (opts.metrics) opts.metrics->finish(f.id, now);
    ++stats.finished;
    return f;
  }

  // A static batch whose rows are all gone takes its padding sequences with it.
  void end_static_batch_if_drained() {
    if (opts.mode != BatchingMode::Static || !running.empty()) return;
    for (const Pad& p : pads) cache.remove(p.seq);
    pads.clear();
  }

  // End a request outside sampling (cancel, deadline): free its sequence, park its record.
  void end_early(LivePtr l, FinishReason reason, Metrics::TimePoint now) {
    if (l->seq >= 0) cache.remove(l->seq);  // resident or swapped
    l->seq = -1;
    if (l->text) l->text->flush();  // the held-back tail belongs to the final text
    ++(reason == FinishReason::Cancelled ? stats.cancelled : stats.deadline);
    ended.push_back(finished_record(*l, reason, now));
  }

  template <class C>
  static LivePtr take(C& c, std::uint64_t id) {
    auto it = std::find_if(c.begin(), c.end(), [&](const LivePtr& p) { return p->req.id == id; });
    if (it == c.end()) return nullptr;
    LivePtr l = std::move(*it);
    c.erase(it);
    return l;
  }

  bool cancel(std::uint64_t id) {
    if (!ids.count(id)) return false;
    LivePtr l = take(waiting, id);
    if (!l) l = take(swapped, id);
    if (!l) {
      l = take(running, id);
      if (l) {
        // Keep the sequence out of end_static_batch_if_drained's way: remove it first.
        cache.remove(l->seq);
        l->seq = -1;
        end_static_batch_if_drained();
      }
    }
    if (!l) return false;  // already ended, waiting to be reported
    end_early(std::move(l), FinishReason::Cancelled, Metrics::Clock::now());
    return true;
  }

  template <class C>
  void expire_in(C& c, Metrics::TimePoint now) {
    for (auto it = c.begin(); it != c.end();) {
      if ((*it)->req.deadline <= now) {
        LivePtr l = std::move(*it);
        it = c.erase(it);
        end_early(std::move(l), FinishReason::Deadline, now);
      } else {
        earliest_deadline = std::min(earliest_deadline, (*it)->req.deadline);
        ++it;
      }
    }
  }

  void expire(Metrics::TimePoint now) {
    if (now < earliest_deadline) return;
    earliest_deadline = Metrics::TimePoint::max();
    expire_in(waiting, now);
    expire_in(swapped, now);
    const bool had_running = !running.empty();
    expire_in(running, now);
    if (had_running) end_static_batch_if_drained();
  }

  // Take the latest-arrived running request off the pool.
  void preempt_last(StepResult& r) {
    LivePtr l = std::move(running.back());
    running.pop_back();
    ++l->preemptions;
    ++r.preempted;
    if (opts.preemption == PreemptionMode::Swap) {
      cache.swap_out(l->seq);
      ++stats.preemptions_swap;
      insert_sorted(swapped, std::move(l));
    } else {
      cache.remove(l->seq);
      l->seq = -1;
      l->cached = 0;
      ++stats.preemptions_recompute;
      insert_sorted(waiting, std::move(l));
    }
  }

  // Largest n <= want whose blocks fit in `avail` blocks.
  std::int64_t fit_chunk(SeqId seq, std::int64_t want, std::int64_t avail) const {
    if (cache.blocks_needed(seq, want) <= avail) return want;
    std::int64_t lo = 0, hi = want;  // fits(lo), !fits(hi)
    while (hi - lo > 1) {
      std::int64_t mid = (lo + hi) / 2;
      (cache.blocks_needed(seq, mid) <= avail ? lo : hi) = mid;
    }
    return lo;
  }

  // A new sequence for `l`, reusing the longest cached prefix of its tokens when prefix
  // caching is on (`reused` tokens).
  SeqId attach(const Live& l, std::int64_t& reused) {
    reused = 0;
    return opts.prefix_caching ? cache.add_sequence(l.tokens, &reused) : cache.add_sequence();
  }

  void admit(Live& l, SeqId seq, std::int64_t reused, StepResult& r) {
    l.seq = seq;
    l.cached = reused;
    if (l.admitted_once) {
      stats.recomputed_tokens += std::int64_t(l.tokens.size()) - reused;
    } else {
      l.admitted_once = true;
      l.cached_prompt = reused;
      if (opts.metrics) opts.metrics->record_cache(std::uint64_t(reused), std::uint64_t(l.n_prompt));
    }
    ++r.admitted;
  }

  struct Item {
    Live* l;
    std::int64_t n;
  };

  // Decide what this step feeds. Returns the plan (may be empty only when idle).
  std::vector<Item> plan(StepResult& r) {
    const std::int64_t bs = cache.block_size();
    const bool cont = opts.mode == BatchingMode::Continuous;

    // 1. Preempted-by-swap requests come back first, oldest first, when they fit with one
    //    block of decode headroom per running request.
    while (!swapped.empty() && std::int64_t(running.size()) < opts.max_running) {
      Live& l = *swapped.front();
      const std::int64_t need = ceil_div(cache.length(l.seq), bs) + std::int64_t(running.size());
      if (cache.available_blocks() < need) break;
      cache.swap_in(l.seq);
      ++r.resumed;
      insert_sorted(running, std::move(swapped.front()));
      swapped.pop_front();
    }

    // Static batching: a new batch starts only when the previous one has fully drained;
    // admit FCFS while every member's worst case (whole prompt + max_new_tokens) fits.
    if (!cont && running.empty() && swapped.empty()) {
      std::int64_t reserve = 0, max_prompt = 0, max_new = 0;
      while (!waiting.empty() && std::int64_t(running.size()) < opts.max_running) {
        Live& l = *waiting.front();
        std::int64_t worst;
        if (opts.static_padding) {
          // Every row may grow to the rectangle's width mp + mn. While the batch prefills,
          // a row and its prompt padding hold mp tokens in two sequences (one partial
          // block each); afterwards the row alone grows to mp + mn.
          const std::int64_t mp = std::max(max_prompt, std::int64_t(l.n_prompt));
          const std::int64_t mn = std::max(max_new, std::int64_t(l.req.max_new_tokens));
          worst = (std::int64_t(running.size()) + 1) * (std::max(ceil_div(mp + mn, bs), ceil_div(mp, bs) + 1) + 1);
          if (worst > cache.available_blocks() && !running.empty()) break;
          max_prompt = mp;
          max_new = mn;
        } else {
          worst = reserve + ceil_div(std::int64_t(l.n_prompt) + l.req.max_new_tokens, bs) + 1;
          if (worst > cache.available_blocks() && !running.empty()) break;
        }
        reserve = worst;
        std::int64_t reused = 0;
        const SeqId seq = attach(l, reused);
        admit(l, seq, reused, r);
        insert_sorted(running, std::move(waiting.front()));
        waiting.pop_front();
      }
      static_batch = int(running.size());
      if (opts.static_padding)
        for (const auto& lp : running)
          if (std::int64_t(lp->n_prompt) < max_prompt)
            pads.push_back({cache.add_sequence(), max_prompt - std::int64_t(lp->n_prompt), lp->tokens.front()});
    }

    for (;;) {
      std::vector<Item> items;
      std::int64_t budget = opts.max_batch_tokens;
      std::int64_t need = 0;
      // 2. Every running decode (one pending token), oldest first.
      for (auto& lp : running) {
        if (budget == 0) break;
        if (lp->pending() != 1) continue;
        items.push_back({lp.get(), 1});
        need += cache.blocks_needed(lp->seq, 1);
        --budget;
      }
      if (need > cache.available_blocks()) {
        // 3. Out of blocks: preempt the latest arrival and plan again.
        preempt_last(r);
        continue;
      }
      // Prefill chunks of running requests (chunked prefill / recompute).
      for (auto& lp : running) {
        if (budget == 0) break;
        if (lp->pending() <= 1) continue;
        const std::int64_t n = fit_chunk(lp->seq, std::min(lp->pending(), budget), cache.available_blocks() - need);
        if (n == 0) continue;
        items.push_back({lp.get(), n});
        need += cache.blocks_needed(lp->seq, n);
        budget -= n;
      }
      // Continuous batching: admit waiting requests FCFS (none while a swapped one waits).
      while (cont && swapped.empty() && budget > 0 && !waiting.empty() &&
             std::int64_t(running.size()) < opts.max_running) {
        Live& l = *waiting.front();
        // Room for the first chunk (without counting a prefix hit) plus one block of decode
        // headroom per running request, so admission does not force an immediate preemption.
        const std::int64_t first = std::min<std::int64_t>(std::int64_t(l.tokens.size()), budget);
        if (cache.available_blocks() - need < ceil_div(first, bs) + std::int64_t(running.size())) break;
        // The prefix reuse may take evictable cached blocks that `need` counted on, more of
        // them than the first chunk checked above (a recomputed request's whole history):
        // when the room is gone, give the sequence back (its blocks return to the cache)
        // and admit no more this step.
        std::int64_t reused = 0;
        const SeqId seq = attach(l, reused);
        const std::int64_t left = std::min<std::int64_t>(std::int64_t(l.tokens.size()) - reused, budget);
        if (cache.available_blocks() - need < ceil_div(left, bs) + std::int64_t(running.size())) {
          cache.remove(seq);
          break;
        }
        admit(l, seq, reused, r);
        const std::int64_t n = fit_chunk(l.seq, std::min(l.pending(), budget), cache.available_blocks() - need);
        Live* lp = waiting.front().get();
        insert_sorted(running, std::move(waiting.front()));
        waiting.pop_front();
        if (n == 0) break;
        items.push_back({lp, n});
        need += cache.blocks_needed(lp->seq, n);
        budget -= n;
      }
      // Static padding: finished rows decode one pad token, prompt padding goes in chunks;
      // padding never preempts anything (the rectangle was reserved), it only uses room.
      pad_plan.clear();
      pad_counts.clear();
      for (auto& p : pads) {
        if (budget == 0) break;
        const std::int64_t want = p.left < 0 ? 1 : std::min(p.left, budget);
        if (want == 0 || cache.length(p.seq) + want > model.config().context_length) continue;
        const std::int64_t n = fit_chunk(p.seq, want, cache.available_blocks() - need);
        if (n == 0) continue;
        pad_plan.push_back(&p);
        pad_counts.push_back(n);
        need += cache.blocks_needed(p.seq, n);
        budget -= n;
      }
      if (items.empty() && !running.empty()) {
        // Nothing fits (every running request is mid-prefill with no room): free some.
        preempt_last(r);
        continue;
      }
      if (items.empty() && (!waiting.empty() || !swapped.empty()))
        throw Error(ErrorCode::CacheFull,
                    fmt::format("scheduler cannot make progress: {} waiting, {} swapped, {} of {} KV blocks "
                                "available (is another user holding the cache?)",
                                waiting.size(), swapped.size(), cache.available_blocks(), cache.num_blocks()));
      return items;
    }
  }

  StepResult step() {
    StepResult r;
    expire(Metrics::Clock::now());
    for (FinishedRequest& f : ended) ids.erase(f.id);
    r.finished = std::move(ended);
    ended.clear();
    if (waiting.empty() && running.empty() && swapped.empty()) return r;
    std::vector<Item> items = plan(r);

    batch.clear();
    std::vector<Live*> rows;  // the requests that sample this step, in logits-row order
    for (const Item& it : items) {
      auto span = std::span<const Token>(it.l->tokens).subspan(std::size_t(it.l->cached), std::size_t(it.n));
      const bool last = it.l->cached + it.n == std::int64_t(it.l->tokens.size());
      batch.add(it.l->seq, span, last ? Want::Last : Want::None);
      if (last) rows.push_back(it.l);
      if (it.n == 1 && it.l->cached + 1 > std::int64_t(it.l->n_prompt)) r.decode_tokens += 1;
      else r.prefill_tokens += int(it.n);
    }
    std::vector<Token> pad_tokens;
    for (std::size_t i = 0; i < pad_plan.size(); ++i) {
      pad_tokens.assign(std::size_t(pad_counts[i]), pad_plan[i]->token);
      batch.add(pad_plan[i]->seq, pad_tokens, Want::None);
      stats.padding_tokens += pad_counts[i];
    }
    r.batch_tokens = int(batch.size());
    // Forward and sample in one call: a GPU backend samples on the device and returns only
    // token ids (no vocab x rows logits download); otherwise the host samples, with each
    // request's history for the penalties. A failure leaves cache and samplers untouched.
    samplers.clear();
    histories.clear();
    for (Live* l : rows) {
      samplers.push_back(&l->sampler);
      histories.emplace_back(l->tokens);
    }
    const std::vector<Sampled> sampled = model.forward_sample(batch, cache, samplers, histories);
    for (const Item& it : items) it.l->cached += it.n;
    for (std::size_t i = 0; i < pad_plan.size(); ++i)
      if (pad_plan[i]->left > 0) pad_plan[i]->left -= pad_counts[i];
    // Prompt padding that is complete has done its work: drop its throwaway sequence.
    std::erase_if(pads, [&](const Pad& p) {
      if (p.left != 0) return false;
      cache.remove(p.seq);
      return true;
    });
    const auto now = Metrics::Clock::now();

    std::vector<Live*> done;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      Live& l = *rows[i];
      const Sampled s = sampled[i];
      l.tokens.push_back(s.token);
      TokenEvent ev;
      ev.id = l.req.id;
      ev.token = s.token;
      ev.logprob = s.logprob;
      ev.first = l.n_out() == 1;
      if (ev.first) l.first = now;
      if (opts.metrics) {
        if (ev.first) opts.metrics->first_token(l.req.id, now);
        else opts.metrics->token(l.req.id, now);
      }
      ev.finished = l.n_out() >= l.req.max_new_tokens || is_stop(l, s.token);
      if (l.text) {
        TextStream::Piece piece = l.text->push(s.token);
        ev.text = std::move(piece.text);
        if (piece.stopped) ev.finished = true;
        else if (ev.finished) ev.text += l.text->flush();
      }
      if (ev.finished) done.push_back(&l);
      r.tokens.push_back(ev);
    }
    stats.output_tokens += std::int64_t(r.tokens.size());

    if (opts.mode == BatchingMode::Static) stats.idle_slot_steps += std::max(0, static_batch - int(running.size()));
    for (Live* l : done) {
      auto it = std::find_if(running.begin(), running.end(), [&](const LivePtr& p) { return p.get() == l; });
      LivePtr lp = std::move(*it);
      running.erase(it);
      if (opts.mode == BatchingMode::Static && opts.static_padding && !running.empty())
        pads.push_back({lp->seq, -1, lp->tokens.back()});  // keeps decoding pad tokens
      else
        cache.remove(lp->seq);
      const bool stopped = (lp->text && lp->text->stopped()) || is_stop(*lp, lp->tokens.back());
      FinishedRequest f = finished_record(*lp, stopped ? FinishReason::Stop : FinishReason::Length, now);
      ids.erase(f.id);
      r.finished.push_back(std::move(f));
    }
    end_static_batch_if_drained();  // the batch has ended: its padding rows go with it
    ++stats.steps;
    stats.forward_tokens += r.batch_tokens;
    stats.decode_tokens += r.decode_tokens;
    stats.prefill_tokens += r.prefill_tokens;
    return r;
  }
};

Scheduler::Scheduler(const Model& model, KVCache& cache, SchedulerOptions opts) {
  if (opts.max_batch_tokens < 1 || opts.max_running < 1 || opts.max_running > opts.max_batch_tokens)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("scheduler: need 1 <= max_running ({}) <= max_batch_tokens ({})", opts.max_running,
                            opts.max_batch_tokens));
  impl_ = std::make_unique<Impl>(model, cache, opts);
}

Scheduler::Scheduler(Scheduler&&) noexcept = default;
Scheduler& Scheduler::operator=(Scheduler&&) noexcept = default;
Scheduler::~Scheduler() = default;

void Scheduler::submit(Request req, Metrics::TimePoint arrival) {
  Impl& s = *impl_;
  const ModelConfig& cfg = s.model.config();
  if (req.prompt.empty())
    throw Error(ErrorCode::InvalidArgument, fmt::format("request {} has an empty prompt", req.id));
  if (req.max_new_tokens < 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("request {}: max_new_tokens {} must be at least 1", req.id, req.max_new_tokens));
  if (s.ids.count(req.id))
    throw Error(ErrorCode::InvalidArgument, fmt::format("request id {} is already in the scheduler", req.id));
  for (std::size_t i = 0; i < req.prompt.size(); ++i)
    if (req.prompt[i] < 0 || req.prompt[i] >= cfg.vocab_size)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("request {}: prompt token {} at position {} is outside the vocabulary of {}", req.id,
                              req.prompt[i], i, cfg.vocab_size));
  // A bias on a token outside the vocabulary would make a later step throw.
  for (const auto& [t, bias] : req.sampling.logit_bias)
    if (t < 0 || t >= cfg.vocab_size)
      throw Error(ErrorCode::InvalidArgument, fmt::format("request {}: logit_bias token {} is outside the vocabulary of {}",
                                                          req.id, t, cfg.vocab_size));
  const std::int64_t total = std::int64_t(req.prompt.size()) + req.max_new_tokens;
  if (cfg.context_length > 0 && total > cfg.context_length)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("request {}: prompt {} + max_new_tokens {} exceeds the model context of {}", req.id,
                            req.prompt.size(), req.max_new_tokens, cfg.context_length));
  // The last sampled token is never fed back, so a request caches at most total - 1 tokens.
  const std::int64_t blocks = ceil_div(total - 1, s.cache.block_size());
  if (blocks > s.cache.num_blocks())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("request {}: {} tokens need {} KV blocks but the cache has only {}", req.id, total - 1,
                            blocks, s.cache.num_blocks()));
  const bool wants_text = req.stream_text || !req.stop_strings.empty();
  if (wants_text && !s.model.has_tokenizer())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("request {}: stop strings and text output need a tokenizer; the model has none", req.id));
  if (s.opts.max_waiting > 0 && s.waiting.size() >= s.opts.max_waiting) {
    ++s.stats.rejected;
    throw Error(ErrorCode::Overloaded, fmt::format("request {}: {} requests are already waiting (max_waiting {})",
                                                   req.id, s.waiting.size(), s.opts.max_waiting));
  }
  const std::uint64_t id = req.id;
  const std::uint64_t n_prompt = req.prompt.size();
  const Metrics::TimePoint deadline = req.deadline;
  // Built before anything is recorded: an empty stop string throws here.
  auto live = std::make_unique<Live>(std::move(req), s.next_order, arrival, wants_text ? &s.model.tokenizer() : nullptr);
  if (s.opts.metrics) s.opts.metrics->start(id, n_prompt, arrival);
  ++s.next_order;
  s.ids.insert(id);
  s.earliest_deadline = std::min(s.earliest_deadline, deadline);
  insert_sorted(s.waiting, std::move(live));
}

bool Scheduler::cancel(std::uint64_t id) { return impl_->cancel(id); }

const char* to_string(FinishReason r) noexcept {
  switch (r) {
    case FinishReason::Length: return "length";
    case FinishReason::Stop: return "stop";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Deadline: return "deadline";
  }
  return "unknown";
}

StepResult Scheduler::step() { return impl_->step(); }

std::vector<FinishedRequest> Scheduler::run_to_completion() {
  std::vector<FinishedRequest> out;
  while (!idle()) {
    StepResult r = step();
    for (auto& f : r.finished) out.push_back(std::move(f));
  }
  return out;
}

bool Scheduler::idle() const noexcept {
  return impl_->waiting.empty() && impl_->running.empty() && impl_->swapped.empty() && impl_->ended.empty();
}
std::size_t Scheduler::num_waiting() const noexcept { return impl_->waiting.size(); }
std::size_t Scheduler::num_running() const noexcept { return impl_->running.size(); }
std::size_t Scheduler::num_swapped() const noexcept { return impl_->swapped.size(); }
const SchedulerStats& Scheduler::stats() const noexcept { return impl_->stats; }
const SchedulerOptions& Scheduler::options() const noexcept { return impl_->opts; }

}  // namespace vireo
