<?php

/**
 * ResyncJob: the words shown for every phase the sidecar's resync.py names (English and Ukrainian), the
 * fallback for a phase this plugin does not know, and how a job is remembered in the kcb_resync_job option.
 *
 * @package KeycrmBridge\Tests
 */

use KeycrmBridge\ResyncJob;
use KeycrmBridge\Settings;
use KeycrmBridge\SidecarResponse;

final class ResyncJobTest extends BridgeTestCase
{
    /** Every phase of sidecar/keycrm_bridge/resync.py and resync_plan.py (FINISHED). */
    private const PHASES = ['planning_keycrm', 'planning_woo', 'planned', 'applying', 'done', 'failed'];

    protected function setUp(): void
    {
        parent::setUp();
        delete_option(Settings::RESYNC_JOB);
    }

    protected function tearDown(): void
    {
        delete_option(Settings::RESYNC_JOB);
        parent::tearDown();
    }

    /** @return array<string, string> */
    private static function labels(): array
    {
        return array_combine(self::PHASES, array_map([ResyncJob::class, 'phaseLabel'], self::PHASES));
    }

    public function testEveryPhaseHasPlainWords(): void
    {
        $this->assertSame([
            'planning_keycrm' => 'Reading KeyCRM…',
            'planning_woo' => 'Reading WooCommerce…',
            'planned' => 'Plan ready',
            'applying' => 'Applying changes…',
            'done' => 'Finished',
            'failed' => 'Failed',
        ], self::labels());
    }

    public function testAPhaseOfANewerSidecarIsShownAsItIsNamed(): void
    {
        $this->assertSame('verifying', ResyncJob::phaseLabel('verifying'));
        $this->assertSame('', ResyncJob::phaseLabel(''));
    }

    public function testPhasesAreTranslatedIntoUkrainian(): void
    {
        $this->assertTrue(switch_to_locale('uk'));
        try {
            load_plugin_textdomain('keycrm-bridge', false, 'keycrm-bridge/languages');
            $this->assertSame([
                'planning_keycrm' => 'Читаємо KeyCRM…',
                'planning_woo' => 'Читаємо WooCommerce…',
                'planned' => 'План готовий',
                'applying' => 'Застосовуємо зміни…',
                'done' => 'Завершено',
                'failed' => 'Не вдалося',
            ], self::labels());
            $this->assertSame('applying_v2', ResyncJob::phaseLabel('applying_v2'));
        } finally {
            restore_previous_locale();
        }
    }

    public function testAStartedJobIsRememberedAndItsEndKept(): void
    {
        ResyncJob::started('rs-7', true);
        $this->assertSame(
            ['id' => 'rs-7', 'dry_run' => true, 'finished' => false, 'report' => false, 'finished_at' => 0],
            ResyncJob::last()
        );

        $running = new SidecarResponse(SidecarResponse::OK, 200, ['id' => 'rs-7', 'phase' => 'applying'], '');
        ResyncJob::remember('rs-7', $running);
        $this->assertFalse(ResyncJob::last()['finished'], 'a running job is not finished');

        $done = new SidecarResponse(SidecarResponse::OK, 200, [
            'id' => 'rs-7', 'phase' => 'done', 'finished_at' => 1700000000,
            'report' => ['csv' => '/v1/resync/rs-7/plan.csv', 'json' => '/v1/resync/rs-7/plan.json'],
        ], '');
        ResyncJob::remember('rs-other', $done);
        $this->assertFalse(ResyncJob::last()['finished'], 'an answer about another job changes nothing');
        ResyncJob::remember('rs-7', $done);
        $this->assertSame(
            ['id' => 'rs-7', 'dry_run' => true, 'finished' => true, 'report' => true, 'finished_at' => 1700000000],
            ResyncJob::last()
        );
    }

    public function testAFailedJobWithoutAPlanHasNoReportAndAForgottenOneIsDropped(): void
    {
        ResyncJob::started('rs-8', false);
        ResyncJob::remember('rs-8', new SidecarResponse(SidecarResponse::OK, 200, ['id' => 'rs-8', 'phase' => 'failed'], ''));
        $this->assertSame(['finished' => true, 'report' => false], array_intersect_key(ResyncJob::last(), ['finished' => 1, 'report' => 1]));

        ResyncJob::started('rs-9', false);
        ResyncJob::remember('rs-9', new SidecarResponse(SidecarResponse::RETRY, 404, null, 'HTTP 404'));
        $this->assertSame(['finished' => true, 'report' => false], array_intersect_key(ResyncJob::last(), ['finished' => 1, 'report' => 1]));

        update_option(Settings::RESYNC_JOB, ['id' => '../etc', 'dry_run' => true], false);
        $this->assertNull(ResyncJob::last(), 'an id that could not come from the sidecar is ignored');
    }
}
