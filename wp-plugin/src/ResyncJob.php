<?php

/**
 * The Full resync this shop started last, and words for the sidecar's resync phases.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

defined('ABSPATH') || exit;

/**
 * One place for the kcb_resync_job option, so a resync started from the admin page or from WP-CLI is
 * remembered the same way and the page offers its report links either way.
 */
final class ResyncJob
{
    /** Job ids the sidecar hands out; anything else is never put in a URL or the option. */
    public const ID_PATTERN = '/^[A-Za-z0-9._:-]{1,64}$/';
    /** Phases after which a job changes no more ("done" and "failed" in the sidecar; the rest for safety). */
    private const FINISHED = ['done', 'finished', 'completed', 'failed', 'cancelled'];

    public static function isValidId(string $id): bool
    {
        return (bool) preg_match(self::ID_PATTERN, $id);
    }

    public static function isFinished(string $phase): bool
    {
        return in_array($phase, self::FINISHED, true);
    }

    /**
     * Plain words for a phase of sidecar/keycrm_bridge/resync.py; a phase this plugin does not know
     * (a newer sidecar) is shown as the sidecar names it.
     */
    public static function phaseLabel(string $phase): string
    {
        return match ($phase) {
            'planning_keycrm' => __('Reading KeyCRM…', 'keycrm-bridge'),
            'planning_woo' => __('Reading WooCommerce…', 'keycrm-bridge'),
            'planned' => __('Plan ready', 'keycrm-bridge'),
            'applying' => __('Applying changes…', 'keycrm-bridge'),
            'done' => __('Finished', 'keycrm-bridge'),
            'failed' => __('Failed', 'keycrm-bridge'),
            'cancelled' => __('Cancelled', 'keycrm-bridge'),
            default => $phase,
        };
    }

    /** Remember a job just started, replacing the previous one (the sidecar acts on one at a time). */
    public static function started(string $id, bool $dryRun): void
    {
        update_option(Settings::RESYNC_JOB, ['id' => $id, 'dry_run' => $dryRun, 'started_at' => time()], false);
        if (!$dryRun) {
            OutboxLimit::resyncStarted();
        }
    }

    /**
     * The job this shop started last, as kept in the option (null when there is none).
     *
     * @return array{id: string, dry_run: bool, finished: bool, report: bool, finished_at: int}|null
     */
    public static function last(): ?array
    {
        $job = get_option(Settings::RESYNC_JOB);
        if (!is_array($job) || !is_string($job['id'] ?? null) || !self::isValidId($job['id'])) {
            return null;
        }
        return [
            'id' => $job['id'],
            'dry_run' => !empty($job['dry_run']),
            'finished' => !empty($job['finished']),
            'report' => !empty($job['report']),
            'finished_at' => (int) ($job['finished_at'] ?? 0),
        ];
    }

    /**
     * Keep what a GET /v1/resync/{id} said about the job this shop started last, so the report links
     * are there after a reload. The sidecar names report paths in status only once a plan exists.
     * Answers about any other job are ignored.
     */
    public static function remember(string $id, SidecarResponse $response): void
    {
        $job = get_option(Settings::RESYNC_JOB);
        if (!is_array($job) || ($job['id'] ?? null) !== $id) {
            return;
        }
        if ($response->status === 404) {
            // The sidecar forgot it (new database, or pruned): stop asking, offer nothing.
            update_option(Settings::RESYNC_JOB, ['finished' => true, 'report' => false] + $job, false);
            return;
        }
        $data = $response->ok() && is_array($response->data) ? $response->data : null;
        if ($data === null || !self::isFinished((string) ($data['phase'] ?? ''))) {
            return;
        }
        update_option(Settings::RESYNC_JOB, [
            'finished' => true,
            'phase' => (string) $data['phase'],
            'report' => self::namesReport($data),
            'finished_at' => is_numeric($data['finished_at'] ?? null) ? (int) $data['finished_at'] : time(),
        ] + $job, false);
    }

    /**
     * Whether a job status from the sidecar names a downloadable report.
     *
     * @param array<string, mixed> $status
     */
    public static function namesReport(array $status): bool
    {
        return is_array($status['report'] ?? null) && isset($status['report']['csv'], $status['report']['json']);
    }
}
