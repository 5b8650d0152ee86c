"""A seeded synthetic CRM world with planted truths: the default data set and the test oracle.

>>> from crm_helpers.synth import SynthConfig, generate, write_world
>>> world = generate(SynthConfig(n_users=5_000, seed=7))        # doctest: +SKIP
>>> write_world(world, "data/synthetic", overwrite=True)         # doctest: +SKIP

``generate_to(cfg, out_dir)`` streams big worlds (10M users) chunk by chunk into Parquet
row groups. Everything is vectorised numpy; the same config gives byte-identical files.

Files written
-------------
``users``, ``events``, ``orders``, ``messages``, ``assignments`` (``.parquet`` or ``.csv``,
the data contract of :mod:`crm_helpers.schema`; timestamps UTC, microseconds), and hidden
truth that analyses must *not* read but tests use to check recovery:

* ``truth/users.parquet``: user_id, customer_type, is_seed, session_rate, churn_at (last
  activity of churned users), n_sessions, n_orders, activity (per-user session-rate
  multiplier), propensity (per-user buying multiplier), dropout_at (end of an ordinary
  customer's lifetime, also before the period; null: no dropout).
* ``truth/assignments.parquet``: every intended experiment assignment with ``logged``
  (False = dropped by the planted SRM bug) and ``planted_response``.
* ``ground_truth.json``: planted parameters and realised counts (keys below).

Planted truths
--------------
1. **Latent customer types** (loyalists, sports_fans, bargain_hunters, at_risk, churned,
   casual; shares configurable) drive age band, gender, device, acquisition channel,
   preferred categories, session rate, funnel step probabilities, coupon use, order size
   and CRM responsiveness. Loyalists are frequent; at_risk users slow down over the last
   6 weeks; churned users stop after a churn date; sports fans are young, male, ``sports``.
   Each type browses its own categories (loyalists home, bargain hunters fashion and
   grocery, at-risk electronics, churned electronics and toys), so behavioural clusters
   can recover the types from what users look at.
2. **Browsing sessions and the funnel** ``visit -> product_view (x K) -> add_to_cart ->
   checkout -> purchase`` (:mod:`~crm_helpers.synth.browse`): K log-normal views (median 3,
   mean ~5.5) with ``listing_view`` pages, one focus product that may be carted (type x
   platform x journey intent x the user's buying propensity); 75% of checkouts are cart
   returns hours to days later in a new session; engagement events (``app_open``,
   ``search``, ``wishlist_add``, ``review``, ``push_open``). Sessions come in shopping
   journeys that revisit the focus product (:mod:`~crm_helpers.synth.journeys`); ordinary
   customers drop out after an exponential lifetime; heavy visitors are the keen buyers, so
   most visitors never buy. Every ``purchase`` event has exactly one ``orders`` row with the
   same user and ts. Realism against real shops: :mod:`~crm_helpers.synth.realism`.
3. **Drop-off**: on ``android`` for 14 days from day 100, checkout -> purchase x 0.6.
4. **Seasonality**: weekend lift, a 7-day promo peak (traffic and add-to-cart lift),
   hour-of-day traffic profiles (weekday vs weekend).
5. **CRM messages**: regular campaigns (push/email/sms/in-app) sent 06-23 UTC; open and
   click probabilities by channel, type and send hour (each channel has its own best hour:
   push 20, email 9, sms 12, in-app 17 UTC); clicks start sessions whose ``channel`` is the
   message channel; any message (clicked or not) may nudge its recipient into a journey on
   another channel days later (the campaign's lift). **Fatigue**: the open (and so click)
   probability is x exp(-0.4 k), k = the user's messages in the previous 7 days; one
   regular campaign is a 5-day push series so that sends pile up (:mod:`~.sends`).
6. **Lookalike seed**: 10% of loyalists flagged ``users.lookalike_seed``; the rest of the
   type is hidden (truth/users.parquet).
7. **Experiments**: ``cart_abandoner_coupon`` (80/20 treatment/holdout, recovery purchase
   probability 0.14 vs 0.08 within 14 days, coupon ``CART20``), ``message_test_3arm``
   (control/variant_a/variant_b: response 4% / 5.5% / 7%, variant_b revenue x1.2),
   ``checkout_redesign`` (intended 50/50, ~7.7% of treatment rows dropped -> ~52/48 SRM,
   no true effect), ``promo_email_holdout`` (one e-mail to 80% of a random audience, the
   20% holdout gets no message; true incremental 3-day conversion (1 - q) x 0.005).
   Each experiment records ``true_lifts`` per metric; audiences are blind to churn.
8. **Dirt** (``dirt=True``): exact duplicate event rows, null event user_ids, late events
   (ts 30-400 days after the end), duplicate order_ids, negative quantities.

ground_truth.json keys
----------------------
``version``, ``config``, ``period`` (start, end), ``vocabularies``, ``ids``, ``counts``
(rows, sessions by channel/source, orders by source), ``customer_types`` (planted and
realised shares, profiles), ``funnel`` (step rules, platform multipliers, sessions
reaching each step by platform, events by platform), ``dropoff`` (platform, step, window,
factor, realised affected / baseline rates), ``seasonality``, ``messages`` (campaigns,
open/click parameters, realised by channel and send hour), ``lookalike_seed``,
``experiments`` (per experiment: variants, intended split and counts, realised counts,
true effects, conversions and revenue in the window, ``true_lifts``), ``dirt`` (enabled and
counts), ``truth_files``, ``behaviour`` (browsing, journeys, dropout, nudges: parameters and
realised counts), ``campaigns`` (``best_send_hour``, ``fatigue``, ``series``, ``holdout``:
see data/README.md, "Campaign truths").
"""

from crm_helpers.synth.config import SynthConfig
from crm_helpers.synth.io import SCHEMAS, generate_to, write_world
from crm_helpers.synth.world import World, generate

__all__ = ["SCHEMAS", "SynthConfig", "World", "generate", "generate_to", "write_world"]
