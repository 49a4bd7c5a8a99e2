<?php

/**
 * When the outbox is flushed next: Action Scheduler where WooCommerce provides it, WP-Cron otherwise.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

defined('ABSPATH') || exit;

/**
 * One flush job at a time is enough: the flush itself is locked and sends the whole outbox.
 */
final class RetryScheduler
{
    public const FLUSH_HOOK = 'kcb_flush_outbox';
    public const AS_GROUP = 'keycrm-bridge';

    /** The filter lets a shop (and the tests) keep WP-Cron even where Action Scheduler is loaded. */
    public static function usesActionScheduler(): bool
    {
        $available = function_exists('as_schedule_single_action') && function_exists('as_get_scheduled_actions');
        return $available && (bool) apply_filters('kcb_use_action_scheduler', true);
    }

    /** Make sure a flush runs at $when at the latest. */
    public static function atLatest(int $when): void
    {
        $when = max($when, time());
        if (self::usesActionScheduler()) {
            // Only a pending action is a retry to come. as_next_scheduled_action() and
            // as_has_scheduled_action() also answer for an in-progress one, and when a scheduled flush
            // fails, the in-progress one is this very flush: asking them ended the retry chain.
            $due = as_get_scheduled_actions([
                'hook' => self::FLUSH_HOOK,
                'args' => [],
                'group' => self::AS_GROUP,
                'status' => 'pending',
                'date' => $when,
                'date_compare' => '<=',
                'per_page' => 1,
            ], 'ids');
            if ($due === []) {
                as_schedule_single_action($when, self::FLUSH_HOOK, [], self::AS_GROUP);
            }
            // Action Scheduler's queue runner is itself a WP-Cron job that runs once a minute, so on a real
            // shop a retry due in 10-30 s waited up to a minute longer (the outbox drained 44 s after a
            // 2-minute outage ended). A WP-Cron event at the same time runs on the first page view after
            // it is due; the flush is locked and sends the whole outbox, so whichever comes second finds
            // nothing to do.
        }
        // WP-Cron removes a single event before it runs it, so a running flush never sees itself here.
        $next = wp_next_scheduled(self::FLUSH_HOOK);
        if ($next !== false && $next <= $when) {
            return;
        }
        if ($next !== false) {
            wp_unschedule_event($next, self::FLUSH_HOOK);
        }
        wp_schedule_single_event($when, self::FLUSH_HOOK);
    }

    /**
     * atLatest() for the hot path: a failed flush schedules its retry in both WP-Cron and Action Scheduler
     * at once, so a WP-Cron event due by $when (read from the autoloaded cron option, no query) shows the
     * retry is there; only a lost one costs the full check.
     */
    public static function ensure(int $when): void
    {
        $next = wp_next_scheduled(self::FLUSH_HOOK);
        if ($next === false || $next > max($when, time())) {
            self::atLatest($when);
        }
    }

    /** @return int|false When the next flush is due (unix seconds), false when none is pending. */
    public static function next()
    {
        if (self::usesActionScheduler()) {
            $actions = as_get_scheduled_actions([
                'hook' => self::FLUSH_HOOK,
                'group' => self::AS_GROUP,
                'status' => 'pending',
                'per_page' => 1,
                'orderby' => 'date',
                'order' => 'ASC',
            ]);
            $action = reset($actions);
            if (!is_object($action)) {
                return false;
            }
            $date = $action->get_schedule()->get_date();
            return $date instanceof \DateTimeInterface ? $date->getTimestamp() : time();
        }
        return wp_next_scheduled(self::FLUSH_HOOK);
    }

    public static function clear(): void
    {
        wp_clear_scheduled_hook(self::FLUSH_HOOK);
        if (function_exists('as_unschedule_all_actions')) {
            as_unschedule_all_actions(self::FLUSH_HOOK, [], self::AS_GROUP);
        }
    }
}
