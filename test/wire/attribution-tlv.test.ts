/**
 * update_fulfill_htlc and update_fail_htlc with attribution_data (TLV 1, 920 bytes): round trips, absence, wrong
 * lengths on both sides, and other TLVs beside it as before.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bytesToHex, concatBytes, hexToBytes } from '../../wire/bytes.js';
import { ArgumentError, DecodeError } from '../../wire/errors.js';
import {
  ATTRIBUTION_TLV_LENGTH,
  updateFailHtlcCodec,
  updateFulfillHtlcCodec,
  type UpdateFailHtlc,
  type UpdateFulfillHtlc,
} from '../../wire/channel-messages.js';

const channelId = new Uint8Array(32).fill(7);
const attributionData = Uint8Array.from({ length: ATTRIBUTION_TLV_LENGTH }, (_, i) => i & 0xff);
const fulfill: UpdateFulfillHtlc = { type: 130, channelId, id: 5n, paymentPreimage: new Uint8Array(32).fill(9) };
const fail: UpdateFailHtlc = { type: 131, channelId, id: 6n, reason: new Uint8Array(292).fill(3) };
type Removal = UpdateFulfillHtlc | UpdateFailHtlc;
interface Codec {
  encode(m: Removal): Uint8Array;
  decode(b: Uint8Array): Removal;
}
/** TLV 1 with a 920-byte value: type 01, BigSize length fd0398. */
const tlvHeader = hexToBytes('01fd0398');

describe('attribution_data TLV', () => {
  it('is 920 bytes', () => assert.equal(ATTRIBUTION_TLV_LENGTH, 920));

  for (const [name, codec, msg] of [
    ['update_fulfill_htlc', updateFulfillHtlcCodec, fulfill],
    ['update_fail_htlc', updateFailHtlcCodec, fail],
  ] as const) {
    const c = codec as unknown as Codec;
    it(`${name}: absent, nothing after the fields; decodes without the field`, () => {
      const bytes = c.encode(msg);
      const d = c.decode(bytes);
      assert.equal('attributionData' in d, false);
      assert.deepEqual(d, msg);
    });

    it(`${name}: round trip, written as TLV 1 at the end`, () => {
      const bytes = c.encode({ ...msg, attributionData });
      const bare = c.encode(msg);
      assert.equal(bytesToHex(bytes), bytesToHex(concatBytes(bare, tlvHeader, attributionData)));
      const d = c.decode(bytes);
      assert.deepEqual(d.attributionData, attributionData);
      assert.equal(d.extensionUnknown, undefined);
    });

    it(`${name}: another length is a DecodeError on decode and an ArgumentError on encode`, () => {
      const bare = c.encode(msg);
      for (const len of [0, 919, 921]) {
        const bad = concatBytes(
          bare,
          hexToBytes(len < 0xfd ? `01${len.toString(16).padStart(2, '0')}` : `01fd${len.toString(16).padStart(4, '0')}`),
          new Uint8Array(len),
        );
        assert.throws(() => c.decode(bad), DecodeError, `${len}`);
        assert.throws(() => c.encode({ ...msg, attributionData: new Uint8Array(len) }), ArgumentError, `${len}`);
      }
    });

    it(`${name}: an unknown odd TLV beside it is kept, an unknown even one refused`, () => {
      const bare = c.encode(msg);
      const withOdd = concatBytes(bare, tlvHeader, attributionData, hexToBytes('0301aa'));
      const d = c.decode(withOdd);
      assert.deepEqual(d.attributionData, attributionData);
      assert.deepEqual(d.extensionUnknown, [{ type: 3n, value: hexToBytes('aa') }]);
      assert.equal(bytesToHex(c.encode(d)), bytesToHex(withOdd));
      assert.throws(() => c.decode(concatBytes(bare, hexToBytes('0201aa'))), DecodeError);
    });
  }
});
