package jose

import (
	"encoding/asn1"
	"math/big"
	"testing"
)

// TestASN1Signature: the DER of (r, s) is what encoding/asn1 makes of the two
// INTEGERs, for every curve's size and for values with leading zeros, the
// high bit set, or both.
func TestASN1Signature(t *testing.T) {
	type sig struct{ R, S *big.Int }
	for _, n := range []int{32, 48, 66} {
		values := [][]byte{
			make([]byte, n), // zero
			append(make([]byte, n-1), 1),
			append([]byte{0x80}, make([]byte, n-1)...),
			append([]byte{0, 0, 0xff}, make([]byte, n-3)...),
			append([]byte{0, 0x7f}, make([]byte, n-2)...),
		}
		full := make([]byte, n)
		for i := range full {
			full[i] = 0xff
		}
		values = append(values, full)
		for _, r := range values {
			for _, s := range values {
				want, err := asn1.Marshal(sig{new(big.Int).SetBytes(r), new(big.Int).SetBytes(s)})
				if err != nil {
					t.Fatal(err)
				}
				if got := asn1Signature(r, s); string(got) != string(want) {
					t.Errorf("asn1Signature(%x, %x) = %x; want %x", r, s, got, want)
				}
			}
		}
	}
}
