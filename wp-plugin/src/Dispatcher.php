<?php

/**
 * Delivery: a request's events go to the outbox once its response is out, and a request of their own sends
 * them (AsyncFlush); a retry job when that fails. WP-CLI and system cron send in their own process.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

defined('ABSPATH') || exit;

/**
 * Never throws and never prints: whatever the sidecar does, the shopper's request has already been answered.
 */
final class Dispatcher
{
    public const FLUSH_HOOK = RetryScheduler::FLUSH_HOOK;
    public const SWEEP_HOOK = 'kcb_outbox_sweep';
    public const SWEEP_SCHEDULE = 'kcb_five_minutes';
    public const AS_GROUP = RetryScheduler::AS_GROUP;

    /** Schema limit is 1000 events and 1 MiB; stay well inside both. */
    public const BATCH_MAX_EVENTS = 500;
    public const BATCH_MAX_BYTES = 900000;
    private const LOCK = 'kcb_outbox_flush';
    /**
     * Back-off after consecutive failures: 10 s, 20 s, then every 30 s, so that the outbox drains within
     * about 30 s of the sidecar coming back however long it was away (a failed try costs one short call).
     */
    public const BACKOFF_BASE = 10;
    public const BACKOFF_MAX = 30;
    /** Seconds after which a retry sends what a flush request (AsyncFlush) did not. */
    public const DOORBELL_FALLBACK = 60;

    public function __construct(private EventBuffer $buffer)
    {
    }

    /**
     * Runs on "shutdown", after WordPress flushed its output buffers. A web request never talks to the
     * sidecar: a sale's request answers the shopper, stores its events (one INSERT) and rings the doorbell
     * of a flush request (AsyncFlush). Sending from the shopper's own PHP worker after
     * fastcgi_finish_request() held that worker for the whole timeout when the sidecar hung, and the
     * worker's after-response work competed with the shop's next requests.
     */
    public function onShutdown(): void
    {
        if ($this->buffer->isEmpty()) {
            return;
        }
        $events = $this->buffer->drain();
        try {
            if (PHP_SAPI === 'cli') {
                $this->deliver($events); // WP-CLI, a system cron: nobody waits for this process
                return;
            }
            $this->finishResponse();
            $this->handOff($events);
        } catch (\Throwable $error) {
            // Last resort: keep the events whatever went wrong above.
            Outbox::add($events, 'plugin error: ' . $error->getMessage());
        }
    }

    /**
     * Send now when the outbox is empty and the sidecar is not known to be away; otherwise queue behind
     * the older events so that the order per SKU holds. For processes nobody waits on (WP-CLI, system
     * cron) and for events the database would not store.
     *
     * @param array<int, array<string, mixed>> $events
     */
    public function deliver(array $events): void
    {
        if ($events === []) {
            return;
        }
        if (!Settings::isConfigured()) {
            Outbox::add($events, 'sidecar URL or shared secret not set');
            return;
        }
        $state = Settings::state();
        $now = microtime(true);
        if ($state['fail_until'] > $now || Outbox::hasPending()) {
            Outbox::add($events);
            $this->scheduleRetry((int) ceil(max($state['fail_until'], $now)));
            return;
        }
        // One sender at a time, so that two senders never interleave batches of the same SKU.
        if (!$this->lock()) {
            Outbox::add($events);
            if (!$this->lockInUse()) {
                $this->flush(5.0); // the sender finished meanwhile and may have looked before our row was in
            }
            return;
        }
        try {
            $sent = $this->sendNow($events);
        } finally {
            $this->unlock();
        }
        if ($sent && Outbox::hasPending()) {
            $this->flush(5.0); // what others queued behind us meanwhile
        }
    }

    /** @param array<int, array<string, mixed>> $events */
    private function sendNow(array $events): bool
    {
        $client = SidecarClient::fromSettings();
        $chunks = array_chunk($events, self::BATCH_MAX_EVENTS);
        foreach ($chunks as $index => $chunk) {
            $response = $client->postEvents($chunk, Settings::timeout());
            if ($response->ok()) {
                continue;
            }
            Outbox::add(array_merge(...array_slice($chunks, $index)), $response->error);
            if ($response->outcome === SidecarResponse::RETRY) {
                $this->recordFailure($response->error);
            } else {
                $this->scheduleRetry(time());
            }
            return false;
        }
        $this->recordSuccess();
        return true;
    }

    private function lock(): bool
    {
        global $wpdb;
        return (string) $wpdb->get_var($wpdb->prepare('SELECT GET_LOCK(%s, 0)', self::LOCK)) === '1';
    }

    private function lockInUse(): bool
    {
        global $wpdb;
        return $wpdb->get_var($wpdb->prepare('SELECT IS_USED_LOCK(%s)', self::LOCK)) !== null;
    }

    private function unlock(): void
    {
        global $wpdb;
        $wpdb->query($wpdb->prepare('SELECT RELEASE_LOCK(%s)', self::LOCK));
    }

    /**
     * Queue the events and let a request of their own send them at once (the shopper's request has
     * already been answered where the server allows; elsewhere this costs one INSERT and a loopback
     * connect that is written and closed without waiting for an answer).
     *
     * @param array<int, array<string, mixed>> $events
     */
    public function handOff(array $events): void
    {
        if (!Outbox::add($events)) {
            // The database refused the row: sending now is the only way not to lose the events.
            $this->deliver($events);
            return;
        }
        if (!Settings::isConfigured()) {
            return; // nothing can send; the plugin's page shows the waiting events and what to set
        }
        $state = Settings::state();
        if ($state['fail_until'] > microtime(true)) {
            // The failed flush scheduled its retry; this only repairs a lost one (no query when it is there).
            RetryScheduler::ensure((int) ceil($state['fail_until']));
            return;
        }
        // A flush in progress sends this row too: it looks again after it lets go of the lock (see flush()),
        // and the row is in before we look at the lock. So only an idle outbox needs the loopback request.
        if ($this->lockInUse()) {
            return;
        }
        if (!AsyncFlush::kick()) {
            $this->scheduleRetry(time());
            return;
        }
        // The doorbell is not answered when the shop cannot reach its own home URL (HTTP auth in front of
        // the site, a proxy that sends it elsewhere): then a retry within a minute, not the 5-minute sweep.
        // Once scheduled it costs no query; the retry finds an empty outbox when the doorbell worked.
        RetryScheduler::ensure(time() + self::DOORBELL_FALLBACK);
    }

    /**
     * Resend the outbox oldest first until it is empty, the sidecar fails, or the time budget is spent.
     *
     * @return array{sent: int, pending: int, dead: int, status: string, error: string}
     */
    public function flush(float $budgetSeconds = 20.0): array
    {
        $result = ['sent' => 0, 'pending' => 0, 'dead' => 0, 'status' => 'done', 'error' => ''];
        if (!Settings::isConfigured()) {
            $result['status'] = 'not_configured';
            return $result;
        }
        // One sender at a time, or two workers could interleave batches and break the order per SKU.
        if (!$this->lock()) {
            $result['status'] = 'busy';
            return $result;
        }
        $deadline = microtime(true) + $budgetSeconds;
        for ($pass = 0; $pass < 3; $pass++) {
            try {
                $this->flushLocked(max(1.0, $deadline - microtime(true)), $result);
            } finally {
                $this->unlock();
            }
            // Rows queued by requests that saw our lock and counted on us (handOff, deliver): they were in
            // before they looked at the lock, so this look after letting go of it finds them.
            if ($result['status'] !== 'done' || !Outbox::hasPending() || !$this->lock()) {
                break;
            }
        }
        $stats = Outbox::stats();
        $result['pending'] = $stats['pending'];
        $result['dead'] = $stats['dead'];
        return $result;
    }

    /** @param array{sent: int, pending: int, dead: int, status: string, error: string} $result */
    private function flushLocked(float $budgetSeconds, array &$result): void
    {
        $client = SidecarClient::fromSettings();
        $timeout = max(Settings::timeout(), 5.0);
        $limit = self::BATCH_MAX_EVENTS;
        $deadline = microtime(true) + $budgetSeconds;
        while (true) {
            $rows = Outbox::oldest($limit, self::BATCH_MAX_BYTES);
            if ($rows === []) {
                OutboxLimit::drained();
                $this->recordSuccess();
                return;
            }
            if (microtime(true) > $deadline) {
                $result['status'] = 'budget_spent';
                $this->scheduleRetry(time());
                return;
            }
            $ids = array_column($rows, 'id');
            $events = array_map(static fn(array $row) => json_decode($row['payload'], true), $rows);
            $response = $client->postEvents($events, $timeout);
            if ($response->ok()) {
                Outbox::delete($ids);
                $result['sent'] += count($ids);
                $limit = min(self::BATCH_MAX_EVENTS, $limit * 2);
                continue;
            }
            if ($response->outcome === SidecarResponse::RETRY) {
                Outbox::markAttempt($ids, $response->error);
                $this->recordFailure($response->error);
                $result['status'] = 'failed';
                $result['error'] = $response->error;
                return;
            }
            // 413 or 400/422: halve the batch until the one event the sidecar refuses is alone, then set
            // it aside (kept, shown in the admin page, revivable) so the rest keeps flowing.
            if (count($ids) > 1) {
                $limit = max(1, intdiv(count($ids), 2));
                continue;
            }
            Outbox::markAttempt($ids, $response->error, true);
            $result['error'] = $response->error;
        }
    }

    /** WP-Cron or Action Scheduler entry points. */
    public function runScheduledFlush(): void
    {
        $this->flush();
    }

    public function runSweep(): void
    {
        if (Outbox::hasPending()) {
            $this->flush();
        }
    }

    /** Make sure a retry runs at $when at the latest. */
    public function scheduleRetry(int $when): void
    {
        RetryScheduler::atLatest($when);
    }

    private function recordFailure(string $error): void
    {
        $state = Settings::state();
        $state['failures']++;
        $delay = min(self::BACKOFF_MAX, self::BACKOFF_BASE * (2 ** min(10, $state['failures'] - 1)));
        $state['fail_until'] = time() + $delay;
        $state['last_error'] = mb_substr($error, 0, 255);
        $state['last_error_at'] = time();
        Settings::saveState($state);
        $this->scheduleRetry((int) $state['fail_until']);
    }

    /** Writes only when something changed, or once a minute, to keep the happy path free of writes. */
    private function recordSuccess(): void
    {
        $state = Settings::state();
        $now = time();
        if ($state['failures'] === 0 && $state['fail_until'] <= 0 && $now - $state['last_ok'] < 60) {
            return;
        }
        $state['failures'] = 0;
        $state['fail_until'] = 0;
        $state['last_ok'] = $now;
        Settings::saveState($state);
    }

    /**
     * Let the client go before the outbox write (PHP-FPM, LiteSpeed). Where the server API cannot (mod_php,
     * CGI), the shopper waits for that write and the doorbell, nothing more.
     */
    private function finishResponse(): void
    {
        ignore_user_abort(true);
        if (function_exists('fastcgi_finish_request')) {
            fastcgi_finish_request();
        } elseif (function_exists('litespeed_finish_request')) {
            litespeed_finish_request();
        }
    }
}
